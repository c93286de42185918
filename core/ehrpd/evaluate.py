"""Export metrics of an EHRPD model on its own split: every sequence metric of
:mod:`core.metrics.sequences` with a 95% patient-bootstrap interval, patient-level membership
inference, and the augmentation experiment. Used by the training command for the model card."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.data.visits import VisitCohort, patient_table
from core.ehrpd.pipeline import EHRPDModel, SequenceSettings
from core.errors import CoreError
from core.metrics import privacy, sequences
from core.metrics.base import MetricResult
from core.metrics.bootstrap import bootstrap_values, normal_ci, two_set_resamples


def _bootstrap(
    fn: Callable[[VisitCohort, VisitCohort], MetricResult],
    point: float,
    real: VisitCohort,
    synth: VisitCohort,
    n_boot: int,
    seed: int,
) -> tuple[float, float]:
    """95% interval of a two-set statistic: point estimate +- 1.96 bootstrap standard errors,
    resampling patients of both sets. (Percentile intervals are biased here: a resample repeats
    patients, which lowers R²-type statistics, so they can miss the point estimate.)"""

    def statistic(rows: tuple[np.ndarray, np.ndarray]) -> float:
        try:
            return fn(real.take(rows[0]), synth.take(rows[1])).value
        except CoreError:
            return float("nan")

    resamples = two_set_resamples(real.n_patients, synth.n_patients, n_boot, seed)
    return normal_ci(point, bootstrap_values(statistic, resamples))


def evaluate_model(
    model: EHRPDModel,
    train: VisitCohort,
    holdout: VisitCohort,
    *,
    seed: int = 0,
    n: int = 0,
    n_boot: int = 100,
    steps: int = 25,
) -> dict:
    """Metrics of ``n`` synthetic patients (default: as many as ``train``) against the split."""
    synth_set = model.generate(SequenceSettings(n=n or train.n_patients, seed=seed, steps=steps))
    synth = synth_set.visits
    vocab = model.encoding.vocabulary_map
    out: dict = {
        "evaluated_with": f"DDIM {steps} steps per visit, eta 0, n={synth.n_patients}, seed={seed}",
        "holdout_patients": holdout.n_patients,
        "synthetic_visits_per_patient": round(float(synth.visits_per_patient().mean()), 3),
        "real_visits_per_patient": round(float(train.visits_per_patient().mean()), 3),
    }
    two_set = {
        "visits_per_patient_w1": sequences.visits_per_patient,
        "gap_ks": sequences.gap_distribution,
        "prevalence_by_visit_r2": lambda r, s: sequences.prevalence_by_visit(r, s, vocab),
        "consecutive_cooccurrence_r2": lambda r, s: sequences.consecutive_cooccurrence(r, s, vocab),
    }
    for key, fn in two_set.items():
        try:
            result = fn(train, synth)
        except CoreError as exc:
            out[key] = f"not computed: {exc}"
            continue
        lo, hi = _bootstrap(fn, result.value, train, synth, n_boot, seed)
        out[key] = {"value": round(result.value, 4), "ci95": [round(lo, 4), round(hi, 4)]}
        out[key] |= {k: v for k, v in result.details.items() if isinstance(v, float | int)}
    three_set = {
        "longitudinal_perplexity": sequences.longitudinal_perplexity,
        "cross_modality_perplexity": sequences.cross_modality_perplexity,
    }
    for key, fn in three_set.items():
        try:
            result = fn(train, synth, holdout, vocab)
        except CoreError as exc:
            out[key] = f"not computed: {exc}"
            continue
        lo, hi = _bootstrap(
            lambda r, s, fn=fn: fn(r, s, holdout, vocab),
            result.value,
            train,
            synth,
            max(20, n_boot // 5),
            seed,
        )
        out[key] = {
            "synthetic_trained": round(result.value, 3),
            "ci95": [round(lo, 3), round(hi, 3)],
            "real_trained": round(result.ideal, 3),
        }
    for key, fn in (
        ("next_visit_tstr_auroc", sequences.next_visit_tstr),
        ("augmentation_auroc", sequences.augmentation_auroc),
    ):
        try:
            result = fn(train, synth, holdout, vocab, n_boot=n_boot * 2, seed=seed)
        except CoreError as exc:
            out[key] = f"not computed: {exc}"
            continue
        out[key] = {
            "value": round(result.value, 4),
            "ci95": [round(c, 4) for c in result.ci] if result.ci else None,
            "ideal": round(result.ideal, 4),
        } | {k: v for k, v in result.details.items() if k != "trtr_ci"}
        if "trtr_ci" in result.details:
            out[key]["ideal_ci95"] = [round(c, 4) for c in result.details["trtr_ci"]]
    # Patient-level membership inference: the record-level distance attack on code bags.
    x_tr = patient_table(train, vocab).codes.matrix.toarray().astype(np.float32)
    x_ho = patient_table(holdout, vocab).codes.matrix.toarray().astype(np.float32)
    mia = privacy.membership_inference(x_tr, x_ho, synth_set.vectors, seed=seed)
    rng = np.random.default_rng(seed)
    aucs = [
        privacy.membership_inference(
            x_tr[rng.integers(0, len(x_tr), len(x_tr))],
            x_ho[rng.integers(0, len(x_ho), len(x_ho))],
            synth_set.vectors,
            seed=seed,
        ).details["auroc"]
        for _ in range(max(20, n_boot // 2))
    ]
    out["patient_mia"] = {
        "accuracy": round(mia.value, 4),
        "auroc": round(mia.details["auroc"], 4),
        "auroc_ci95": [
            round(mia.details["auroc"] + z * float(np.std(aucs, ddof=1)), 4) for z in (-1.96, 1.96)
        ],
        "advantage": round(mia.details["advantage"], 4),
        "per_group": [mia.details["n_members"], mia.details["n_non_members"]],
    }
    return out
