"""Utility: train on synthetic, test on real (TSTR) against train on real, test on real (TRTR)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from core.errors import ConfigError
from core.metrics.base import GateEvidence, MetricResult
from core.metrics.bootstrap import (
    bootstrap_values,
    both_classes,
    percentile_ci,
    record_resamples,
    standard_error,
)
from core.metrics.ids import tstr_id

CLASSIFIERS = ("random_forest", "logistic_regression")


def _classifier(name: str, seed: int):
    if name == "random_forest":
        return RandomForestClassifier(
            n_estimators=200, min_samples_leaf=2, n_jobs=-1, random_state=seed
        )
    if name == "logistic_regression":
        return LogisticRegression(max_iter=1000, C=1.0, random_state=seed)
    raise ConfigError(f"Unknown classifier '{name}'; expected one of {CLASSIFIERS}.")


def _bootstrap_ci(y: np.ndarray, p: np.ndarray, fn, n_boot: int, seed: int) -> tuple[float, float]:
    return percentile_ci(
        lambda i: fn(y[i], p[i]) if both_classes(y[i]) else np.nan,
        record_resamples(len(y), n_boot, seed),
    )


def _paired_se(
    y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, fn, n_boot: int, seed: int
) -> float:
    """Bootstrap standard error of fn(y, p_a) - fn(y, p_b) over the same resampled records (both
    scored on one holdout, so their errors are shared and the difference is tighter)."""
    diffs = bootstrap_values(
        lambda i: fn(y[i], p_a[i]) - fn(y[i], p_b[i]) if both_classes(y[i]) else np.nan,
        record_resamples(len(y), n_boot, seed),
    )
    return standard_error(diffs)


def tstr(
    real_train: tuple[np.ndarray, np.ndarray],
    synth: tuple[np.ndarray, np.ndarray],
    real_holdout: tuple[np.ndarray, np.ndarray],
    *,
    classifiers: tuple[str, ...] = CLASSIFIERS,
    n_boot: int = 200,
    seed: int = 0,
) -> list[MetricResult]:
    """For each classifier: AUROC and AUPR on the real holdout of a model trained on synthetic
    data (value, with a bootstrap 95% CI over holdout records) and of the same model trained on
    the real training split (the ``ideal``, also with its CI in details); ``deficit`` (TRTR minus
    TSTR) with its paired bootstrap standard error is what the gate's utility floor judges."""
    (x_tr, y_tr), (x_sy, y_sy), (x_ho, y_ho) = real_train, synth, real_holdout
    for name, y in (("real training", y_tr), ("synthetic", y_sy), ("real holdout", y_ho)):
        if len(np.unique(y)) < 2:
            raise ConfigError(f"the {name} records need both label classes for TSTR")
    out = []
    for clf_name in classifiers:
        probs = {}
        for source, (x, y) in (("real", (x_tr, y_tr)), ("synthetic", (x_sy, y_sy))):
            clf = _classifier(clf_name, seed).fit(x, y)
            probs[source] = clf.predict_proba(x_ho)[:, 1]
        for metric, fn in (("AUROC", roc_auc_score), ("AUPR", average_precision_score)):
            real_v, syn_v = fn(y_ho, probs["real"]), fn(y_ho, probs["synthetic"])
            deficit_se = _paired_se(y_ho, probs["real"], probs["synthetic"], fn, n_boot, seed)
            out.append(
                MetricResult(
                    id=tstr_id(metric.lower(), clf_name),
                    name=f"TSTR {metric} ({clf_name.replace('_', ' ')})",
                    category="utility",
                    value=float(syn_v),
                    higher_is_better=True,
                    ideal=float(real_v),
                    lower_bound=0.0,
                    upper_bound=1.0,
                    ci=_bootstrap_ci(y_ho, probs["synthetic"], fn, n_boot, seed),
                    details={
                        "trtr": float(real_v),
                        "trtr_ci": _bootstrap_ci(y_ho, probs["real"], fn, n_boot, seed),
                        "prevalence_holdout": float(np.mean(y_ho)),
                        "deficit": float(real_v - syn_v),
                        "deficit_se": deficit_se,
                    },
                    evidence=GateEvidence(float(real_v - syn_v), deficit_se),
                )
            )
    return out
