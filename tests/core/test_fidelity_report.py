"""Issue #33's measures in the report: figures, the 'what gives the set away' paragraph, the JSON."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.data.cohort import FeatureSpec
from core.data.records import EHRTable
from core.metrics.suite import ReviewSettings, review
from core.report import review_figures as rf
from core.report.review_report import ReportContext, figures_for, how_computed, to_json
from core.report.review_sections import ReviewDocument, build_html

FEATURES = (
    FeatureSpec("age", "numeric"),
    FeatureSpec("lactate", "numeric"),
    FeatureSpec("unit", "categorical", categories=("MICU", "SICU")),
)


def table(n, seed, prefix, lactate_shift=0.0):
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, n)
    frame = pd.DataFrame(
        {
            "age": age.round(),
            "lactate": (0.05 * age + rng.normal(0, 1, n) + lactate_shift).round(1),
            "unit": np.where(rng.random(n) < 0.4, "MICU", "SICU"),
        }
    )
    ids = np.asarray([f"{prefix}{i}" for i in range(n)], dtype=object)
    return EHRTable(ids, frame, FEATURES, None, None, None, ())


@pytest.fixture(scope="module")
def reviewed():
    train, holdout = table(300, 0, "t"), table(150, 1, "h")
    return review(
        "shifted",
        train,
        holdout,
        table(300, 2, "s", lactate_shift=1.0),
        settings=ReviewSettings(bootstrap=50),
    )


def test_new_rows_and_figures(reviewed):
    ids = {r.id for r in reviewed.results}
    assert {
        "detection_auroc_logistic_regression",
        "detection_auroc_gradient_boosting",
        "alpha_precision",
        "beta_recall",
        "authenticity",
        "pair_trends",
    } <= ids
    gbm = reviewed.get("detection_auroc_gradient_boosting")
    assert gbm.value > 0.7 and gbm.details["top_feature"] == "lactate"
    titles = [f.layout.title.text for f in figures_for(reviewed)]
    assert any(t.startswith("Detection (gradient boosting)") for t in titles)
    assert any(t.startswith("alpha-precision and beta-recall") for t in titles)
    assert any(t.startswith("Column-pair trends") for t in titles)
    heat = rf.pair_trends_heatmap(reviewed.get("pair_trends"))
    assert len(heat.data[0].x) == 3  # the three columns of the three pairs


def test_report_and_json_carry_them(reviewed):
    context = ReportContext("toy", "0" * 64, {"train": 300}, {"seed": 0})
    page = build_html(ReviewDocument([reviewed], context))
    assert "What gives the set away." in page and "It leans most on lactate" in page
    payload = json.loads(to_json([reviewed], context))
    metrics = {m["id"]: m for m in payload["sets"]["shifted"]["metrics"]}
    det = metrics["detection_auroc_logistic_regression"]
    assert det["ci"] and det["details"]["leans_on"].startswith("lactate")
    assert 0 <= det["details"]["real_vs_real_auroc"] <= 1
    assert "curve" not in metrics["alpha_precision"]["details"]  # arrays stay out
    assert metrics["pair_trends"]["details"]["worst_pairs"]


def test_the_report_follows_the_one_section_order(reviewed):
    import re

    from core.release.gate import evaluate_gate
    from core.report.review_sections import SECTIONS, section

    context = ReportContext("toy", "0" * 64, {"train": 300}, {"seed": 0})
    page = build_html(ReviewDocument([reviewed], context, {"shifted": evaluate_gate(reviewed)}))
    titles = [s.title for s in SECTIONS]
    shown = [h for h in re.findall(r"<h2>(.*?)</h2>", page) if h in titles]
    assert shown == sorted(shown, key=titles.index)
    assert {"Summary", "Membership attacks", "Per-column fidelity", "Release gate"} <= set(shown)
    assert shown[-1] == "Settings"
    assert section("exposure").html is None  # the per-patient view is never exported


def test_the_summary_says_how_the_mmd_was_estimated_with_its_interval(reviewed):
    context = ReportContext("toy", "0" * 64, {"train": 300}, {"seed": 0})
    page = build_html(ReviewDocument([reviewed], context))
    mmd = reviewed.get("mmd")
    assert (
        f"shifted: MMD {mmd.value:.3g}: exact, over all pairs of 300 real and 300 synthetic" in page
    )
    assert "95% CI" not in page.split("shifted: MMD")[1].split("</p>")[0]  # exact: no interval
    # above the exact size, the block estimator's interval is stated
    blocked = replace(
        mmd,
        ci=(0.01, 0.03),
        details=mmd.details
        | {"exact": False, "estimator": "block estimator: 10 blocks of about 30 + 30 records"},
    )
    text = how_computed(replace(reviewed, results=[blocked]))
    assert text == (
        f"MMD {mmd.value:.3g}: block estimator: 10 blocks of about 30 + 30 records of 300 real "
        "and 300 synthetic records; 95% CI 0.01 to 0.03."
    )


def test_mmd_bars_name_bandwidths_in_the_bars_order_and_draw_block_intervals(reviewed):
    exact = reviewed.get("mmd")
    blocked = replace(
        exact, ci=(0.5 * exact.value, 2 * exact.value), details=exact.details | {"bandwidth": 0.25}
    )
    fig = rf.mmd_bars({"b": blocked, "a": exact})
    assert f"bandwidth 0.25, {exact.details['bandwidth']:.3g};" in fig.layout.title.text
    assert list(fig.data[0].error_y.array) == pytest.approx([exact.value, 0])
    assert list(fig.data[0].error_y.arrayminus) == pytest.approx([0.5 * exact.value, 0])
