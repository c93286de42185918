"""Utility: train on synthetic, test on real (TSTR) against train on real, test on real (TRTR)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from core.errors import ConfigError
from core.metrics.base import GateEvidence, MetricResult
from core.metrics.bootstrap import interval, record_resamples, standard_error
from core.metrics.ids import tstr_id
from core.metrics.memo import digest, shared
from core.metrics.ranking import Ranking

CLASSIFIERS = ("random_forest", "logistic_regression")
# Records each classifier is fitted on at most (a stratified subsample above it, stated in the
# result): a 200-tree forest's fit grows as n log n and dominated reviews of large cohorts.
MAX_TRAINING_RECORDS = 10_000


def _classifier(name: str, seed: int):
    if name == "random_forest":
        return RandomForestClassifier(
            n_estimators=200, min_samples_leaf=2, n_jobs=-1, random_state=seed
        )
    if name == "logistic_regression":
        return LogisticRegression(max_iter=1000, C=1.0, random_state=seed)
    raise ConfigError(f"Unknown classifier '{name}'; expected one of {CLASSIFIERS}.")


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _holdout_scores(
    name: str, seed: int, x: np.ndarray, y: np.ndarray, x_holdout: np.ndarray
) -> np.ndarray:
    """P(label 1) on the holdout records of the classifier ``name`` fitted on (x, y)."""
    scores = _classifier(name, seed).fit(x, y).predict_proba(x_holdout)[:, 1]
    scores.flags.writeable = False  # may be shared between reviews
    return scores


def stratified_cap(
    x: np.ndarray, y: np.ndarray, limit: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` records, each label keeping its share (all of them when there are fewer)."""
    if len(y) <= limit:
        return x, y
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        take = max(1, limit * len(rows) // len(y))
        keep.append(rng.choice(rows, min(take, len(rows)), replace=False))
    rows = np.sort(np.concatenate(keep))
    return x[rows], y[rows]


def tstr(
    real_train: tuple[np.ndarray, np.ndarray],
    synth: tuple[np.ndarray, np.ndarray],
    real_holdout: tuple[np.ndarray, np.ndarray],
    *,
    classifiers: tuple[str, ...] = CLASSIFIERS,
    n_boot: int = 200,
    seed: int = 0,
    max_training_records: int = MAX_TRAINING_RECORDS,
) -> list[MetricResult]:
    """For each classifier: AUROC and AUPR on the real holdout of a model trained on synthetic
    data (value, with a bootstrap 95% CI over holdout records) and of the same model trained on
    the real training split (the ``ideal``, also with its CI in details); ``deficit`` (TRTR minus
    TSTR) with its paired bootstrap standard error is what the gate's utility floor judges. Each
    model is fitted on at most ``max_training_records`` (stratified); every holdout record is
    scored."""
    (x_tr, y_tr), (x_sy, y_sy), (x_ho, y_ho) = real_train, synth, real_holdout
    fitted_on = {"real": len(y_tr), "synthetic": len(y_sy)}
    x_tr, y_tr = stratified_cap(x_tr, y_tr, max_training_records, seed)
    x_sy, y_sy = stratified_cap(x_sy, y_sy, max_training_records, seed)
    for name, y in (("real training", y_tr), ("synthetic", y_sy), ("real holdout", y_ho)):
        if len(np.unique(y)) < 2:
            raise ConfigError(f"the {name} records need both label classes for TSTR")
    # one set of resamples for every interval: the deficit's SE is paired (both models scored
    # on the same resampled holdout records, so their errors are shared)
    resamples = list(record_resamples(len(y_ho), n_boot, seed))
    split_digest = digest(x_tr, y_tr, x_ho)  # hashed once, not once per classifier
    out = []
    for clf_name in classifiers:
        real_fit = (clf_name, seed, x_tr, y_tr, x_ho)  # the same for every set: fitted once
        probs = {
            "real": shared(
                digest("tstr-real", split_digest, clf_name, seed), _holdout_scores, *real_fit
            ),
            "synthetic": _holdout_scores(clf_name, seed, x_sy, y_sy, x_ho),
        }
        rank = {source: Ranking.of(y_ho, p) for source, p in probs.items()}
        for metric, stat in (("AUROC", "auroc"), ("AUPR", "average_precision")):
            real_v, syn_v = (getattr(rank[s], stat)() for s in ("real", "synthetic"))
            boot = {s: rank[s].over_resamples(stat, resamples) for s in rank}
            deficit_se = standard_error(_finite(boot["real"] - boot["synthetic"]))
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
                    ci=interval(_finite(boot["synthetic"])),
                    details={
                        "trtr": float(real_v),
                        "trtr_ci": interval(_finite(boot["real"])),
                        "prevalence_holdout": float(np.mean(y_ho)),
                        "deficit": float(real_v - syn_v),
                        "deficit_se": deficit_se,
                        # fitted on (a stratified subsample above the cap) / of how many
                        "real_training_records": f"{len(y_tr):,} of {fitted_on['real']:,}",
                        "synthetic_training_records": f"{len(y_sy):,} of {fitted_on['synthetic']:,}",
                    },
                    evidence=GateEvidence(float(real_v - syn_v), deficit_se),
                )
            )
    return out
