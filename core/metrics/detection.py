"""Detection: how well a classifier tells synthetic records from real training records.

The C2ST / SDMetrics-LogisticDetection / synthcity-detection idea: label real training records 0
and synthetic records 1 (equal numbers, the larger set subsampled), predict every record out of
fold (stratified folds over records; one record is one patient, so the folds are patient-level),
and report the AUROC of the out-of-fold scores. 0.5 = the classifier cannot tell them apart;
1 = it separates them perfectly. The same classifier on real training vs real holdout records
(equally many of each) is the reference: what "indistinguishable" looks like at this size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from core.errors import ConfigError
from core.metrics.base import GateEvidence, MetricResult
from core.metrics.bootstrap import interval, record_resamples, standard_error
from core.metrics.ids import detection_id
from core.metrics.memo import digest, shared
from core.metrics.ranking import Ranking, auroc

DETECTORS = ("logistic_regression", "gradient_boosting")
MAX_PER_CLASS = 3200  # records per class (stated in details); keeps the review fast in a browser
FOLDS = 3  # as SDMetrics' LogisticDetection
BOOSTING_FEATURES = 256  # widest input of the boosted trees: the most varying dims (no labels)
PERMUTATION_CANDIDATES = 40  # dims whose permutation importance is measured (GBM)
TOP_FEATURES = 15
HISTOGRAM_BINS = 64

TITLES = {"logistic_regression": "logistic regression", "gradient_boosting": "gradient boosting"}


def as_recorded(x: np.ndarray) -> np.ndarray:
    """Encoded values rounded to 6 decimals: a real 1.9 read as float32 (1.8999999762) and a
    decoded 1.9 encode 1e-8 apart, and trees split on that storage noise (a detector told every
    EHRDiff record apart by it) though both are written "1.9" in any released file."""
    return np.round(np.asarray(x, dtype=np.float64), 6)


def _detector(name: str, seed: int):
    if name == "logistic_regression":
        return LogisticRegression(max_iter=500, C=1.0)
    if name == "gradient_boosting":
        # fixed size (no early stopping): the same model on every fold and every set; 50 trees
        # of 15 leaves on 64 bins fit 4,000 records x 230 dims in about a second on one core
        return HistGradientBoostingClassifier(
            max_iter=50, learning_rate=0.2, max_leaf_nodes=15, max_bins=HISTOGRAM_BINS,
            early_stopping=False, random_state=seed,
        )  # fmt: skip
    raise ConfigError(f"Unknown detector '{name}'; expected one of {DETECTORS}.")


def balanced_pair(
    real: np.ndarray, other: np.ndarray, limit: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Equally many records of each set (at most ``limit``), the larger one subsampled."""
    n = min(len(real), len(other), limit)

    def pick(x: np.ndarray) -> np.ndarray:
        return x if len(x) == n else x[np.sort(rng.choice(len(x), n, replace=False))]

    return pick(real), pick(other)


def out_of_fold_scores(
    x: np.ndarray, y: np.ndarray, detector: str, seed: int, folds: int = FOLDS
) -> tuple[np.ndarray, list]:
    """Out-of-fold P(synthetic) for every record and the fitted model of each fold (with the
    rows it held out). Features are standardised (by all records: no label is used)."""
    scores = np.zeros(len(y))
    models = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, test_rows in splitter.split(x, y):
        model = _detector(detector, seed).fit(x[fit_rows], y[fit_rows])
        scores[test_rows] = model.predict_proba(x[test_rows])[:, 1]
        models.append((model, test_rows))
    return scores, models


def bootstrap_auroc_ci(
    y: np.ndarray, scores: np.ndarray, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval (``level``) of the AUROC over records resampled with replacement."""
    values = Ranking.of(y, scores).over_resamples("auroc", record_resamples(len(y), n_boot, seed))
    return interval(values[np.isfinite(values)], level)


def _logistic_leaning(models: list, names: list[str]) -> pd.DataFrame:
    """Mean coefficient over folds on standardised features: positive = more of it in
    synthetic records."""
    coef = np.mean([m.coef_[0] for m, _ in models], axis=0)
    order = np.argsort(-np.abs(coef), kind="stable")[:TOP_FEATURES]
    return pd.DataFrame(
        {
            "feature": [names[j] for j in order],
            "importance": np.abs(coef[order]),
            "direction": np.where(coef[order] > 0, "more in synthetic", "more in real"),
        }
    )


def feature_alone_auroc(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Per feature: AUROC of a one-feature detector, the synthetic share of the feature's value
    bin (up to 64 quantile bins of the pooled values), cross-fitted on two halves of the records
    so that chance stays near 0.5. It sees marginal differences and values on another grid (a
    precision or support real records do not have)."""
    halves = np.random.default_rng(seed).permutation(len(y)) % 2
    out = np.full(x.shape[1], 0.5)
    for j in range(x.shape[1]):
        col = x[:, j]
        edges = np.unique(np.quantile(col, np.linspace(0, 1, HISTOGRAM_BINS + 1)[1:-1]))
        if col.min() == col.max():
            continue
        bins = np.searchsorted(edges, col, side="right")
        score = np.empty(len(y))
        for h in (0, 1):
            fit = halves == h
            syn = np.bincount(bins[fit], weights=y[fit], minlength=len(edges) + 1)
            tot = np.bincount(bins[fit], minlength=len(edges) + 1)
            share = (syn + 0.5) / (tot + 1.0)
            score[~fit] = share[bins[~fit]]
        out[j] = auroc(y, score)
    return out


def _permutation_leaning(
    models: list, x: np.ndarray, y: np.ndarray, names: list[str], seed: int
) -> pd.DataFrame:
    """Rise in held-out log-loss when one feature is shuffled (first fold's held-out records;
    log-loss still moves when a perfect detector's AUROC does not). Measured for the
    ``PERMUTATION_CANDIDATES`` features that alone tell the sets apart best; beside it, that
    one-feature AUROC."""
    model, rows = models[0]
    xt, yt = x[rows], y[rows]
    alone = feature_alone_auroc(x, y, seed)
    candidates = np.argsort(-np.abs(alone - 0.5), kind="stable")[:PERMUTATION_CANDIDATES]
    base = log_loss(yt, model.predict_proba(xt)[:, 1], labels=[0, 1])
    rng = np.random.default_rng(seed)
    rises = []
    for j in candidates:
        shuffled = xt.copy()
        shuffled[:, j] = shuffled[rng.permutation(len(xt)), j]
        rises.append(log_loss(yt, model.predict_proba(shuffled)[:, 1], labels=[0, 1]) - base)
    rises = np.asarray(rises)
    order = np.argsort(-rises, kind="stable")[:TOP_FEATURES]
    picked = candidates[order]
    real_mean, syn_mean = x[y == 0].mean(axis=0), x[y == 1].mean(axis=0)
    return pd.DataFrame(
        {
            "feature": [names[j] for j in picked],
            "importance": rises[order],
            "alone_auroc": alone[picked],
            "direction": np.where(
                syn_mean[picked] > real_mean[picked], "more in synthetic", "more in real"
            ),
        }
    )


def boosting_columns(x: np.ndarray, limit: int = BOOSTING_FEATURES) -> np.ndarray:
    """The ``limit`` dims that vary most over all records (label-free, so the out-of-fold AUROC
    stays honest); all of them when there are no more."""
    if x.shape[1] <= limit:
        return np.arange(x.shape[1])
    return np.sort(np.argsort(-x.var(axis=0), kind="stable")[:limit])


def _stacked(
    a: np.ndarray, b: np.ndarray, max_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced records of ``a`` (label 0) and ``b`` (label 1), standardised together."""
    a, b = balanced_pair(a, b, max_per_class, np.random.default_rng(seed))
    x = StandardScaler().fit_transform(np.concatenate([a, b]))
    return x, np.r_[np.zeros(len(a)), np.ones(len(b))]


def _reference(
    real_train: np.ndarray,
    real_holdout: np.ndarray,
    cols: np.ndarray,
    detector: str,
    max_per_class: int,
    n_boot: int,
    seed: int,
) -> tuple[float, tuple[float, float], int]:
    """The detector on real training vs real holdout records: what "indistinguishable" scores
    at this size (AUROC, its bootstrap interval, records per class)."""
    x_ref, y_ref = _stacked(real_train, real_holdout, max_per_class, seed)
    ref_scores, _ = out_of_fold_scores(x_ref[:, cols], y_ref, detector, seed)
    ci = bootstrap_auroc_ci(y_ref, ref_scores, n_boot, seed)
    return auroc(y_ref, ref_scores), ci, int(len(y_ref) // 2)


# One OpenMP thread for this call's thread (libgomp keeps the limit per thread, so other sessions
# are untouched). At the review's sizes (<= 3,200 records per class) the boosted trees run as fast
# on one thread as on two, and beside another busy process or a training in the server, two
# spinning OpenMP threads per fit made detection 8-10x slower (measured: 31 s against 3 s).
@threadpool_limits.wrap(limits=1, user_api="openmp")
def detection(
    real_train: np.ndarray,
    synth: np.ndarray,
    real_holdout: np.ndarray,
    names: list[str] | None = None,
    *,
    detectors: tuple[str, ...] = DETECTORS,
    max_per_class: int = MAX_PER_CLASS,
    n_boot: int = 200,
    seed: int = 0,
) -> list[MetricResult]:
    """For each detector: out-of-fold AUROC at telling synthetic from real training records
    (value, 95% bootstrap CI over records), the same on real training vs real holdout records
    (the ``ideal`` shown, with its CI in details), and the features the detector leans on most
    (``per_feature``: logistic coefficients on standardised features; for gradient boosting
    the drop in AUROC when a feature is shuffled)."""
    real_train, synth, real_holdout = (as_recorded(a) for a in (real_train, synth, real_holdout))
    if real_train.shape[1] != synth.shape[1] or real_train.shape[1] != real_holdout.shape[1]:
        raise ConfigError(
            f"detection needs equal widths: train {real_train.shape}, synthetic {synth.shape}, "
            f"holdout {real_holdout.shape}"
        )
    for label, data in (("real training", real_train), ("synthetic", synth)):
        if len(data) < 2 * FOLDS:
            raise ConfigError(
                f"detection needs at least {2 * FOLDS} {label} records; got {len(data)}"
            )
    names = names or [f"dim {i}" for i in range(real_train.shape[1])]
    x, y = _stacked(real_train, synth, max_per_class, seed)
    has_reference = len(real_holdout) >= FOLDS
    split_digest = digest(real_train, real_holdout) if has_reference else ""  # hashed once
    out = []
    for name in detectors:
        cols = boosting_columns(x) if name == "gradient_boosting" else np.arange(x.shape[1])
        scores, models = out_of_fold_scores(x[:, cols], y, name, seed)
        auc = auroc(y, scores)
        ref_auc, ref_ci, ref_per_class = float("nan"), (float("nan"), float("nan")), 0
        if has_reference:
            # the same for every set reviewed against this split (given the columns): run once
            ref = (real_train, real_holdout, cols, name, max_per_class, n_boot, seed)
            ref_auc, ref_ci, ref_per_class = shared(
                digest(
                    "detection-reference", split_digest, cols, name, max_per_class, n_boot, seed
                ),
                _reference,
                *ref,
            )
        leaning = (
            _logistic_leaning(models, names)
            if name == "logistic_regression"
            else _permutation_leaning(models, x[:, cols], y, [names[j] for j in cols], seed)
        )
        boot = Ranking.of(y, scores).over_resamples("auroc", record_resamples(len(y), n_boot, seed))
        boot = boot[np.isfinite(boot)]
        out.append(
            MetricResult(
                id=detection_id(name),
                name=f"Detection AUROC ({TITLES[name]}, synthetic vs real)",
                category="fidelity",
                value=auc,
                higher_is_better=False,
                ideal=ref_auc if np.isfinite(ref_auc) else 0.5,
                lower_bound=0.0,
                upper_bound=1.0,
                ci=interval(boot),
                per_feature=leaning,
                # the release gate's optional ceiling judges the AUROC by its bootstrap SE
                evidence=GateEvidence(auc, standard_error(boot)),
                details={
                    "real_vs_real_auroc": ref_auc,
                    "real_vs_real_ci": ref_ci,
                    "records_per_class": int(len(y) // 2),
                    "reference_records_per_class": ref_per_class,
                    "folds": FOLDS,
                    "detector": TITLES[name],
                    # SDMetrics' LogisticDetection scale: 1 = indistinguishable, 0 = separated
                    "detection_score": float(1 - (2 * max(auc, 0.5) - 1)),
                    "features_used": int(len(cols)),
                    "leaning_measure": "|coefficient| on standardised features"
                    if name == "logistic_regression"
                    else "log-loss rise when shuffled (first fold)",
                    "top_feature": str(leaning["feature"].iloc[0]) if len(leaning) else "",
                    "leans_on": ", ".join(map(str, leaning["feature"].head(5))),
                },
            )
        )
    return out
