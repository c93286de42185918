"""The attack battery on the Review's figures and in the HTML report."""

import numpy as np

from core.metrics import domias, privacy
from core.metrics.suite import Review
from core.report import review_figures as rf
from core.report.review_report import (
    ReportContext,
    battery_frame,
    battery_results,
    figures_for,
)
from core.report.review_sections import ReviewDocument, build_html


def _review(name: str, synth_kind: str) -> Review:
    rng = np.random.default_rng(0)
    train, holdout = rng.random((400, 8)), rng.random((200, 8))
    synth = train.copy() if synth_kind == "copy" else rng.random((400, 8))
    results = [
        privacy.membership_inference(train, holdout, synth),
        domias.domias(train, holdout, synth),
    ]
    return Review(name, results, {}, "f" * 64, len(synth), None)


def test_roc_curves_on_a_log_fpr_axis_with_the_operating_points():
    rv = _review("copy", "copy")
    battery = battery_results(rv)
    assert list(battery) == ["Distance", "DOMIAS"]
    fig = rf.attack_rocs(battery)
    assert fig.layout.xaxis.type == "log"
    curves = [t for t in fig.data if t.mode == "lines" and t.name != "chance"]
    assert len(curves) == 2 and all(min(t.x) > 0 for t in curves)  # log axis: no FPR of 0
    dots = [t for t in fig.data if t.mode == "markers"]
    assert [len(t.x) for t in dots] == [3, 3]
    assert "ε ≥" in curves[0].name
    assert any(f.layout.xaxis.type == "log" for f in figures_for(rv))


def test_table_has_tpr_at_fpr_with_intervals_and_the_epsilon_bound_per_set_and_attack():
    frame = battery_frame([_review("copy", "copy"), _review("fresh", "independent")])
    assert list(frame["attack"]) == ["Distance", "DOMIAS", "Distance", "DOMIAS"]
    assert {"TPR at 0.1% FPR", "TPR at 1.0% FPR", "TPR at 10.0% FPR"} <= set(frame.columns)
    copy, fresh = frame.iloc[1], frame.iloc[3]
    assert float(copy["ε lower bound (95%)"].split()[0]) > 2
    assert fresh["ε lower bound (95%)"] == "0.00"
    assert "(" in copy["TPR at 1.0% FPR"] and "-" in copy["AUROC (95% CI)"]


def test_html_report_shows_the_attack_table():
    rv = _review("copy", "copy")
    page = build_html(ReviewDocument([rv], ReportContext("toy", "0" * 64, {}, {})))
    assert "<h2>Membership attacks</h2>" in page and "delta 1e-05" in page
    assert "TPR at 1.0% FPR" in page


def test_offline_audits_recorded_with_the_model_are_shown_beside_the_battery():
    from core.metrics.attack_stats import attack_stats
    from core.metrics.canary_audit import audit
    from core.report.review_report import audit_frame

    rng = np.random.default_rng(0)
    shadow = attack_stats(rng.normal(1, 1, 200), rng.normal(0, 1, 200)).details()
    shadow |= {"method": "shadow-model attack", "shadows": 8, "targets": 400,
               "trained_with": "the model's own settings (30,000 steps)", "date": "2026-12-04"}  # fmt: skip
    coins = rng.random(100) < 0.5
    canaries = audit(coins, coins + rng.normal(0, 0.1, 100), 20, 20).as_dict()
    canaries |= {"method": "canary audit", "trained_with": "x", "date": "2026-12-04"}
    audits = {"ehrdiff": {"shadow": shadow, "canaries": canaries}}
    frame = audit_frame(audits)
    assert list(frame["audit"]) == ["canary audit", "shadow-model attack"]
    assert frame.iloc[1]["size"] == "8 shadows, 400 targets"
    assert frame.iloc[0]["size"] == "100 canaries; 40 of 40 guesses right"
    assert float(frame.iloc[0]["ε lower bound (95%)"]) > 1  # 40 of 40 guesses right
    assert frame.iloc[1]["AUROC (95% CI)"].startswith(f"{shadow['auroc']:.3f}")
    rv = _review("fresh", "independent")
    page = build_html(
        ReviewDocument(
            [rv], ReportContext("toy", "0" * 64, {}, {}), audits={"fresh": audits["ehrdiff"]}
        )
    )
    assert "<h3>Offline audits</h3>" in page and "8 shadows, 400 targets" in page
    assert audit_frame({}).empty and audit_frame({"x": {"other": {"n": 1}}}).empty
