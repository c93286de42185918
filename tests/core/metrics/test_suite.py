import numpy as np
import pytest
import scipy.sparse as sp

from core.data.cohort import CodeMatrix
from core.data.records import EHRTable
from core.errors import ConfigError
from core.metrics.suite import ReviewSettings, review, summary_table


def codes(x: np.ndarray, prefix: str, labels=None) -> EHRTable:
    vocab = tuple(f"c{j}" for j in range(x.shape[1]))
    ids = np.asarray([f"{prefix}{i}" for i in range(len(x))], dtype=object)
    return EHRTable(
        ids,
        None,
        (),
        CodeMatrix(sp.csr_array(x.astype(np.uint8)), vocab, "t", "full"),
        labels,
        "y" if labels is not None else None,
        ("0", "1") if labels is not None else (),
    )


def draw(n, d, seed):
    return (np.random.default_rng(seed).random((n, d)) < 0.3).astype(np.float32)


def test_suite_runs_reports_progress_and_summarises():
    calls = []
    rv = review(
        "s",
        codes(draw(300, 12, 0), "t"),
        codes(draw(300, 12, 1), "h"),
        codes(draw(300, 12, 2), "s"),
        callback=lambda i, n, label: calls.append(label),
    )
    assert (
        calls[-1] == "done"
        and "MMD" in calls
        and rv.n_records == 300
        and rv.subsampled_from is None
    )
    table = summary_table([rv])
    assert {"metric", "category", "ideal", "s"} <= set(table.columns) and len(table) == len(
        rv.results
    )
    assert all(r.version == "1" for r in rv.results)


def test_tiny_and_huge_sets():
    train, holdout = codes(draw(200, 8, 0), "t"), codes(draw(200, 8, 1), "h")
    with pytest.raises(ConfigError, match="at least 2"):
        review("one", train, holdout, codes(draw(1, 8, 2), "s"))
    big = review(
        "big", train, holdout, codes(draw(900, 8, 3), "s"), settings=ReviewSettings(subsample=400)
    )
    assert big.n_records == 400 and big.subsampled_from == 900


def test_single_column_skips_what_cannot_be_computed_with_a_reason():
    rv = review(
        "one column",
        codes(draw(100, 1, 0), "t"),
        codes(draw(100, 1, 1), "h"),
        codes(draw(100, 1, 2), "s"),
    )
    assert "two varying dimensions" in rv.skipped["correlation_difference"]
    assert rv.get("mia_accuracy") is not None


def test_every_review_metric_has_a_unique_stable_id() -> None:
    import re

    rv = review(
        "ids", codes(draw(300, 8, 0), "t"), codes(draw(300, 8, 1), "h"), codes(draw(300, 8, 2), "s")
    )
    ids = [r.id for r in rv.results]
    assert all(re.fullmatch(r"[a-z0-9_]+", i) for i in ids), ids
    assert len(ids) == len(set(ids))
    assert {"mia_accuracy", "dcr_share", "exact_copies", "attribute_inference_gap", "mmd"} <= set(
        ids
    )
    assert rv.get("no_such_metric") is None


def test_review_is_a_loop_over_the_registered_specs() -> None:
    from core.metrics.specs import METRICS, explanation, title

    rv = review(
        "specs",
        codes(draw(300, 8, 0), "t"),
        codes(draw(300, 8, 1), "h"),
        codes(draw(300, 8, 2), "s"),
    )
    assert all(r.spec in METRICS for r in rv.results)
    assert all(len(explanation(s.id)) > 40 and s.title for s in METRICS)
    assert {r.spec for r in rv.results} | set(rv.skipped) <= {s.id for s in METRICS}
    # unlabelled code data: TSTR and the numeric-only metrics do not apply and are not "skipped"
    assert "tstr" not in {r.spec for r in rv.results} and "tstr" not in rv.skipped
    assert explanation("no_such_metric") == "" and title("mmd") == "MMD"
    table = summary_table([rv])
    assert list(table["id"]) == [r.id for r in rv.results]
