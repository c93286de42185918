"""Report: the CLI writes HTML/JSON/CSV; the HTML is self-contained; uploads are schema-checked."""

import json

import numpy as np
import pandas as pd
import pytest

from core.data.records import ehr_table, table_from_frame
from core.data.tables import load_wide_table
from core.errors import CohortError
from core.report.__main__ import main


@pytest.fixture
def cohort_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    age = rng.normal(60, 12, n).round(1)
    smoker = (rng.random(n) < 0.3).astype(int)
    icu = rng.choice(["MICU", "SICU", "CCU"], n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(age - 60) / 8))).astype(int)
    frame = pd.DataFrame(
        {"id": [f"p{i}" for i in range(n)], "age": age, "smoker": smoker, "icu": icu, "y": y}
    )
    path = tmp_path / "cohort.csv"
    frame.to_csv(path, index=False)
    synth = frame.sample(frac=1.0, random_state=1).drop(columns=["id"])
    synth["age"] = synth["age"] + rng.normal(0, 1, n).round(1)
    spath = tmp_path / "synthetic.csv"
    synth.to_csv(spath, index=False)
    return path, spath


@pytest.mark.slow
def test_cli_writes_a_self_contained_report(cohort_csv, tmp_path, capsys):
    real, synth = cohort_csv
    out = tmp_path / "out" / "report.html"
    code = main([
        "--cohort", "wide_table", "--input", f"table={real}", "--option", "id_column=id", "--option", "label_column=y",
        "--synthetic", f"noisy={synth}", "--baseline", "--out", str(out), "--mmd-subsample", "200",
    ])  # fmt: skip
    assert code == 0
    page = out.read_text()
    assert "Plotly.newPlot" in page and '<script src="http' not in page  # plotly.js inlined
    assert "noisy" in page and "Independent marginals (baseline)" in page and "sha256" in page
    assert "Per-column fidelity: worst" in page and "click a header to sort" in page
    assert "function sortTable" in page
    payload = json.loads(out.with_suffix(".json").read_text())
    assert set(payload["sets"]) == {"noisy", "Independent marginals (baseline)"}
    metrics = {m["name"]: m["value"] for m in payload["sets"]["noisy"]["metrics"]}
    assert metrics["Dimension-wise probability R^2"] > 0.9
    table = pd.read_csv(out.with_suffix(".csv"))
    assert {"metric", "ideal", "noisy"} <= set(table.columns)
    assert "Membership inference" in capsys.readouterr().out


def test_table_from_frame_names_schema_problems(cohort_csv):
    real, _ = cohort_csv
    table = ehr_table(load_wide_table(real, id_column="id", label_column="y"))
    good = table.to_frame()
    back = table_from_frame(good, table, "good.csv")
    assert back.columns == table.columns and np.array_equal(back.labels, table.labels)
    with pytest.raises(CohortError, match="missing smoker; unexpected colour"):
        table_from_frame(good.drop(columns=["smoker"]).assign(colour="red"), table, "bad.csv")
    with pytest.raises(CohortError, match="expected a number, found 'old'"):
        table_from_frame(good.assign(age=["old"] + list(good["age"][1:])), table, "bad.csv")
    with pytest.raises(CohortError, match="not one of the cohort's levels"):
        table_from_frame(good.assign(icu="ward"), table, "bad.csv")
    with pytest.raises(CohortError, match="no rows"):
        table_from_frame(good.iloc[:0], table, "empty.csv")


@pytest.mark.slow
def test_cli_release_gate_fails_a_training_copy_and_records_an_override(cohort_csv, tmp_path):
    from core.data.cohort import split_cohort

    real, _ = cohort_csv
    frame = pd.read_csv(real)
    cohort = load_wide_table(real.read_bytes(), id_column="id", label_column="y", name="c.csv")
    train_ids = set(cohort.record_ids[split_cohort(cohort, 0.2, 0).train])
    copy = frame[frame["id"].isin(train_ids)].drop(columns=["id"])
    leak = tmp_path / "leak.csv"
    copy.to_csv(leak, index=False)
    common = [
        "--cohort", "wide_table", "--input", f"table={real}", "--option", "id_column=id",
        "--option", "label_column=y", "--synthetic", f"leak={leak}", "--mmd-subsample", "200",
    ]  # fmt: skip
    out = tmp_path / "gate.html"
    assert main([*common, "--out", str(out), "--fail-on-gate"]) == 2
    payload = json.loads(out.with_suffix(".json").read_text())
    gate = payload["sets"]["leak"]["release_gate"]
    assert gate["verdict"] == "fail"
    failed = {c["name"] for c in gate["checks"] if c["verdict"] == "fail"}
    assert "Exact copies of training records" in failed
    assert json.loads(out.with_suffix(".release.json").read_text()) == {}
    assert "Release gate" in out.read_text() and "FAIL" in out.read_text()
    main([*common, "--out", str(out), "--override", "test fixture, not for release"])
    release = json.loads(out.with_suffix(".release.json").read_text())["leak"]
    assert release["verdict"] == "fail (released by override)"
    assert release["override_reason"] == "test fixture, not for release"
    assert len(release["synthetic_sha256"]) == 64 and release["real_cohort_fingerprint"]
    assert release["review"]["synthetic_sha256"] == release["synthetic_sha256"]  # bound


def test_codes_per_record_figure_holds_shares_not_one_value_per_record():
    from core.report.generation_figures import codes_per_record_overlay

    real = np.array([3, 1, 3, 7, 3, 0])
    fig = codes_per_record_overlay(real, np.array([1, 1, 2]))
    assert len(fig.data[0].x) == len(fig.data[1].x) == 8  # counts 0..7, not the 6 records
    assert fig.data[0].y.tolist() == pytest.approx([1 / 6, 1 / 6, 0, 3 / 6, 0, 0, 0, 1 / 6])
    assert fig.data[1].y.tolist() == pytest.approx([0, 2 / 3, 1 / 3, 0, 0, 0, 0, 0])
