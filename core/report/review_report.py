"""What the exportable review states: its context, the JSON, and the tables, sentences and figures
the Review page and the HTML report both show (the report's sections: review_sections.py)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from core import __version__
from core.data.cohort import Cohort, CohortSplit
from core.data.records import EHRTable
from core.metrics.base import MetricResult
from core.metrics.ids import MetricId, detection_id
from core.metrics.suite import Review, ReviewSettings, settings_dict
from core.release.gate import GROUPS, GateVerdict
from core.report import review_figures as rf
from core.report.generation_figures import codes_per_record_overlay, prevalence_scatter


@dataclass(frozen=True)
class ReportContext:
    cohort_name: str
    cohort_fingerprint: str
    split: dict
    settings: dict
    sets: dict[str, dict] = field(
        default_factory=dict
    )  # name -> provenance (model, sha256, sampler, seed)


def make_context(
    cohort: Cohort, split: CohortSplit, settings: ReviewSettings, sets: dict[str, dict]
) -> ReportContext:
    """Everything the report states about the real data, the split and the settings."""
    return ReportContext(
        cohort_name=cohort.name,
        cohort_fingerprint=cohort.fingerprint(),
        split=split.summary(),
        settings=settings_dict(settings),
        sets=sets,
    )


def code_counts(
    train: EHRTable, synthetic: dict[str, EHRTable]
) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """Codes per record of the real training split and of each synthetic set (None without codes)."""
    real = train.codes.codes_per_record() if train.codes is not None else None
    return {
        n: (real, t.codes.codes_per_record() if t.codes is not None else None)
        for n, t in synthetic.items()
    }


def gate_json(verdict: GateVerdict) -> dict:
    return {
        "verdict": verdict.status,
        "groups": {g: verdict.group_status(g) for g in GROUPS},
        "checks": [asdict(c) for c in verdict.checks],
        "thresholds": asdict(verdict.thresholds),
        "not_applicable": list(verdict.not_applicable),
        "detectable_leak": verdict.detectable,
    }


def to_json(
    reviews: list[Review],
    context: ReportContext,
    verdicts: dict[str, GateVerdict] | None = None,
) -> str:
    payload = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "app_version": __version__,
        "cohort": {
            "name": context.cohort_name,
            "fingerprint": context.cohort_fingerprint,
            "split": context.split,
        },
        "settings": context.settings,
        "sets": {
            rv.name: {
                "provenance": context.sets.get(rv.name, {}),
                "fingerprint": rv.fingerprint,
                "records": rv.n_records,
                "subsampled_from": rv.subsampled_from,
                "skipped": rv.skipped,
                "release_gate": gate_json(verdicts[rv.name])
                if verdicts and rv.name in verdicts
                else None,
                "metrics": [
                    {
                        "id": r.id,
                        "name": r.name,
                        "category": r.category,
                        "value": r.value,
                        "ideal": r.ideal,
                        "higher_is_better": r.higher_is_better,
                        "ci": r.ci,
                        "version": r.version,
                        # scalars only: per-record arrays stay out of the export
                        "details": {
                            k: v
                            for k, v in r.details.items()
                            if not isinstance(v, list | np.ndarray | pd.DataFrame | pd.Series)
                        },
                    }
                    for r in rv.results
                ],
            }
            for rv in reviews
        },
    }
    return json.dumps(
        payload, indent=2, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)
    )


COLUMN_TABLE = {
    "feature": "Column",
    "kind": "Kind",
    "measure": "Measure",
    "distance": "Distance",
    "wasserstein_iqr": "Wasserstein / IQR",
    "off_support": "Off-support share",
    "spike_excess": "Spike excess",
    "support": "Real support",
}


def column_frame(result: MetricResult) -> pd.DataFrame:
    """The per-column table as the page and the report show it, worst column first."""
    return result.per_feature[list(COLUMN_TABLE)].rename(columns=COLUMN_TABLE)


def validity_text(result: MetricResult) -> str:
    """One sentence: "99.6% of 3,200 records (95% CI 99.3% to 99.8%) obey all 375 rules ..."."""
    d = result.details
    lo, hi = result.ci or (float("nan"), float("nan"))
    return (
        f"{result.value:.1%} of {d['n_records']:,} records (95% CI {lo:.1%} to {hi:.1%}) obey "
        f"all {d['n_constraints']:,} rules of the real cohort ({d['constraints_source']}); "
        f"{d['invalid_records']:,} break at least one"
        + (
            f": {d['impossible_records']:,} a rule no real record can break (the gate judges "
            f"these), {d['invalid_records'] - d['impossible_records']:,} only a training range "
            "or pattern that real unseen records break too."
            if d.get("impossible_records") is not None and d["invalid_records"]
            else "."
        )
    )


def anonymeter_results(reviews: list[Review]) -> dict[str, dict[str, MetricResult]]:
    """Set name -> Anonymeter's results by id, for the sets that have them."""
    out = {
        rv.name: {m: rv.get(m) for m in rf.ANONYMETER if rv.get(m) is not None} for rv in reviews
    }
    return {name: by_id for name, by_id in out.items() if by_id}


def battery_results(review: Review) -> dict[str, MetricResult]:
    """Attack name -> result, for the battery's attacks the review computed."""
    found = {name: review.get(metric_id) for metric_id, name in rf.BATTERY.items()}
    return {name: r for name, r in found.items() if r is not None}


def _interval(value: float, ci) -> str:
    return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"


def battery_frame(reviews: list[Review]) -> pd.DataFrame:
    """One row per set and attack: AUROC, TPR at 0.1 / 1 / 10% FPR (95% intervals: DeLong for
    the AUROC, Clopper-Pearson for the TPRs) and the 95% epsilon lower bound."""
    rows = []
    for rv in reviews:
        for name, r in battery_results(rv).items():
            d = r.details
            row = {
                "set": rv.name,
                "attack": name,
                "members / non-members": f"{d['n_members']:,} / {d['n_non_members']:,}",
                "AUROC (95% CI)": _interval(d["auroc"], d["auroc_ci"]),
            }
            for key, p in d["tpr_at_fpr"].items():
                row[f"TPR at {float(key):.1%} FPR"] = _interval(p["tpr"], p["tpr_ci"])
            at = d["epsilon_at_fpr"]
            row["ε lower bound (95%)"] = f"{d['epsilon_lower_bound']:.2f}" + (
                f" (at {at:.1%} FPR)" if at is not None else ""
            )
            rows.append(row)
    return pd.DataFrame(rows)


def battery_note(reviews: list[Review]) -> str:
    """How to read the attack table, with the delta its epsilon bounds are stated at."""
    deltas = {r.details["epsilon_delta"] for rv in reviews for r in battery_results(rv).values()}
    return _BATTERY_NOTE.format(delta=", ".join(f"{d:g}" for d in sorted(deltas)) or "1e-05")


_BATTERY_NOTE = (
    "Each attack scores every real patient; TPR at x% FPR is the share of training patients it "
    "finds while calling x% of holdout patients members (0.5 AUROC and TPR = FPR are chance). "
    "Intervals 95%: DeLong for the AUROC, exact Clopper-Pearson for the rates. The epsilon lower "
    "bound is what the best operating point proves about any differential-privacy guarantee at "
    "delta {delta}, with 95% confidence (0 = nothing proven)."
)


def audit_frame(audits: dict[str, dict]) -> pd.DataFrame:
    """One row per set and offline audit (``python -m core.audit``) recorded in the manifest of
    the model that made the set: what ran, how it was trained and what it found."""
    rows = []
    for name, by_kind in audits.items():
        for kind, a in sorted(by_kind.items()):
            if not isinstance(a, dict) or "epsilon_lower_bound" not in a:
                continue
            row = {"set": name, "audit": a.get("method", kind)}
            if "auroc" in a:
                row["AUROC (95% CI)"] = _interval(a["auroc"], a.get("auroc_ci", (np.nan, np.nan)))
            at_1 = (a.get("tpr_at_fpr") or {}).get("0.01")
            row["TPR at 1.0% FPR"] = _interval(at_1["tpr"], at_1["tpr_ci"]) if at_1 else "—"
            row["ε lower bound (95%)"] = f"{a['epsilon_lower_bound']:.2f}"
            if kind == "shadow":
                row["size"] = f"{a.get('shadows', '?')} shadows, {a.get('targets', 0):,} targets"
            else:
                row["size"] = (
                    f"{a.get('canaries', 0):,} canaries; {a.get('correct', 0):,} of "
                    f"{a.get('guesses', 0):,} guesses right"
                )
            row["trained with"] = a.get("trained_with", "")
            row["date"] = a.get("date", "")
            rows.append(row)
    return pd.DataFrame(rows)


AUDIT_NOTE = (
    "Offline audits of the models that made these sets, run by `python -m core.audit` on each "
    "model's own training cohort and recorded in its manifest; the Review shows them and never "
    "recomputes them. The shadow-model attack trains models of the same family with and without "
    "each target record (LiRA scoring); the canary audit trains one model with a random half of "
    "held-out records added and bounds epsilon (pure DP) from how well they are told apart."
)


def figures_for(
    review: Review, real_codes: np.ndarray | None = None, synth_codes: np.ndarray | None = None
) -> list:
    figs = []
    for metric_id, fn in (
        (MetricId.DIMWISE_PROBABILITY, lambda r: prevalence_scatter(r, "real training split")),
        (MetricId.DIMWISE_PREDICTION, rf.prediction_scatter),
        (MetricId.COLUMN_FIDELITY, rf.column_fidelity_bars),
        (MetricId.MIA, rf.membership_roc),
        (MetricId.DCR, rf.dcr_histogram),
    ):
        res = review.get(metric_id)
        if res is not None:
            figs.append(fn(res))
    battery = battery_results(review)
    if battery:
        figs.append(rf.attack_rocs(battery))
    if synth_codes is not None:
        figs.append(codes_per_record_overlay(real_codes, synth_codes))
    figs.extend(fidelity_figures(review))
    return figs


DETECTION_IDS = (detection_id("logistic_regression"), detection_id("gradient_boosting"))


def fidelity_figures(review: Review) -> list:
    """Issue #33's plots: what the detectors lean on, the precision / recall curves and the
    worst column pairs (those the review computed)."""
    figs = [rf.detection_features(r) for r in map(review.get, DETECTION_IDS) if r is not None]
    precision, recall = review.get(MetricId.ALPHA_PRECISION), review.get(MetricId.BETA_RECALL)
    if precision is not None and recall is not None:
        figs.append(rf.precision_recall_curves(precision, recall))
    pairs = review.get(MetricId.PAIR_TRENDS)
    if pairs is not None and pairs.details["heatmap"]["columns"]:
        figs.append(rf.pair_trends_heatmap(pairs))
    return figs


def detection_text(result: MetricResult) -> str:
    """One sentence: "Gradient boosting tells synthetic from real training records with AUROC
    0.99 (95% CI ...); real holdout vs training: 0.51. It leans most on ..."."""
    d = result.details
    lo, hi = result.ci or (float("nan"), float("nan"))
    return (
        f"{d['detector'].capitalize()} tells synthetic from real training records with AUROC "
        f"{result.value:.3f} (95% CI {lo:.3f} to {hi:.3f}; 0.5 = cannot tell); real holdout vs "
        f"training records: {d['real_vs_real_auroc']:.3f}. It leans most on {d['leans_on']}."
    )


def how_computed(review: Review) -> str:
    """One line on how the estimates that may be approximate were computed for this set: the MMD
    estimator and its 95% CI, and how many records each TSTR model was fitted on ("n of N")."""
    parts = []
    mmd = review.get(MetricId.MMD)
    if mmd is not None:
        d = mmd.details
        how = "exact, over all pairs" if d.get("exact") else d.get("estimator", "all pairs")
        sub = " (a random subsample of each set)" if d.get("subsampled") else ""
        ci = f"; 95% CI {mmd.ci[0]:.3g} to {mmd.ci[1]:.3g}" if mmd.ci else ""
        parts.append(
            f"MMD {mmd.value:.3g}: {how} of {d['n_real']:,} real and {d['n_synthetic']:,} "
            f"synthetic records{sub}{ci}"
        )
    tstr = next((r for r in review.results if r.spec == MetricId.TSTR), None)
    if tstr is not None and "synthetic_training_records" in tstr.details:
        d = tstr.details
        parts.append(
            f"TSTR models fitted on {d['synthetic_training_records']} synthetic records "
            f"(the real-data reference on {d['real_training_records']} real training records)"
        )
    return "; ".join(parts) + "." if parts else ""
