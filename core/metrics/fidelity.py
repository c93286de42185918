"""Fidelity metrics comparing a synthetic record table with a real one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from core.encoding.marginals import significant
from core.errors import ConfigError
from core.metrics.base import MetricResult
from core.metrics.ids import MetricId


def r2_against_identity(real: np.ndarray, synth: np.ndarray) -> float:
    """Coefficient of determination of ``synth`` as a prediction of ``real`` on the line y = x.

    1 is perfect agreement; unlike squared Pearson correlation it penalises any offset or slope.
    """
    ss_res = float(np.sum((real - synth) ** 2))
    ss_tot = float(np.sum((real - real.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)


def dimension_wise_probability(
    real: np.ndarray, synth: np.ndarray, names: list[str] | None = None
) -> MetricResult:
    """Per dimension, the mean of real vs synthetic vectors (prevalence for 0/1 dimensions).

    ``value`` is R^2 against the identity line (EHRDiff's dimension-wise probability R^2);
    ``details`` also reports Pearson r and Spearman rho of the two prevalence vectors.
    """
    real = np.asarray(real, dtype=np.float64)
    synth = np.asarray(synth, dtype=np.float64)
    if real.ndim != 2 or synth.ndim != 2 or real.shape[1] != synth.shape[1]:
        raise ConfigError(
            f"real {real.shape} and synthetic {synth.shape} must be 2-D with equal widths"
        )
    if len(real) == 0 or len(synth) == 0:
        raise ConfigError("both datasets need at least one record")
    return dimension_wise_probability_from_means(
        real.mean(axis=0), synth.mean(axis=0), names, len(real), len(synth)
    )


def dimension_wise_probability_from_means(
    p_real: np.ndarray,
    p_synth: np.ndarray,
    names: list[str] | None = None,
    n_real: int = 0,
    n_synth: int = 0,
) -> MetricResult:
    """As :func:`dimension_wise_probability`, from per-dimension means (e.g. a checkpoint's reference)."""
    p_real = np.asarray(p_real, dtype=np.float64)
    p_synth = np.asarray(p_synth, dtype=np.float64)
    if p_real.shape != p_synth.shape or p_real.ndim != 1:
        raise ConfigError(f"mean vectors differ in shape: {p_real.shape} vs {p_synth.shape}")
    names = names or [f"dim {i}" for i in range(len(p_real))]
    many = len(p_real) > 1
    pearson = (
        float(stats.pearsonr(p_real, p_synth).statistic)
        if many and p_real.std() > 0 and p_synth.std() > 0
        else float("nan")
    )
    spearman = (
        float(stats.spearmanr(p_real, p_synth).statistic)
        if many and p_real.std() > 0 and p_synth.std() > 0
        else float("nan")
    )
    return MetricResult(
        id=MetricId.DIMWISE_PROBABILITY,
        name="Dimension-wise probability R^2",
        category="fidelity",
        value=r2_against_identity(p_real, p_synth),
        higher_is_better=True,
        ideal=1.0,
        upper_bound=1.0,
        per_feature=pd.DataFrame({"feature": names, "real": p_real, "synthetic": p_synth}),
        details={
            "pearson_r": pearson,
            "spearman_rho": spearman,
            "n_real": n_real,
            "n_synthetic": n_synth,
        },
    )


def _observed_values(real: pd.Series, synth: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Non-missing values at six significant digits: a real 0.4 stored as float32 (0.40000001)
    and a decoded 0.4 are one value, else KS counts a whole spike between them."""
    a, b = real.to_numpy(dtype=float), synth.to_numpy(dtype=float)
    return significant(a[~np.isnan(a)], 6), significant(b[~np.isnan(b)], 6)


def _ks_and_wasserstein(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    iqr = float(np.subtract(*np.percentile(a, [75, 25]))) or float(np.std(a)) or 1.0
    w = float(stats.wasserstein_distance(a, b))
    return {
        "ks": float(stats.ks_2samp(a, b).statistic),
        "wasserstein": w,
        "wasserstein_iqr": w / iqr,
    }


def numeric_marginals(real: pd.DataFrame, synth: pd.DataFrame, columns: list[str]) -> MetricResult:
    """Per numeric column: two-sample KS statistic and Wasserstein-1 distance (in column units,
    and scaled by the real interquartile range so columns are comparable). Value = mean KS."""
    rows = []
    for col in columns:
        a, b = _observed_values(real[col], synth[col])
        if len(a) == 0 or len(b) == 0:
            rows.append(
                {"feature": col, "ks": np.nan, "wasserstein": np.nan, "wasserstein_iqr": np.nan}
            )
            continue
        rows.append({"feature": col, **_ks_and_wasserstein(a, b)})
    table = pd.DataFrame(rows, columns=["feature", "ks", "wasserstein", "wasserstein_iqr"])
    return MetricResult(
        id=MetricId.NUMERIC_MARGINALS,
        name="Numeric marginals (mean KS statistic)",
        category="fidelity",
        value=float(table["ks"].mean()) if table["ks"].notna().any() else float("nan"),
        higher_is_better=False,
        ideal=0.0,
        lower_bound=0.0,
        upper_bound=1.0,
        per_feature=table,
        details={
            "mean_wasserstein_iqr": float(table["wasserstein_iqr"].mean())
            if len(table)
            else float("nan")
        },
    )


COLUMN_FIDELITY_COLUMNS = [
    "feature",
    "kind",
    "measure",
    "distance",
    "wasserstein_iqr",
    "off_support",
    "support",
    "spike_excess",
]


def _support_text(values: np.ndarray, discrete: bool, decimals: int | None) -> str:
    if discrete:
        return f"{len(np.unique(values))} values"
    if decimals == 0:
        return "integers"
    return f"{decimals} decimals" if decimals is not None else ""


def _isin_close(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``np.isin`` up to float32 storage: a 0.7 read as float32 is 0.69999999."""
    ref = np.unique(reference)
    i = np.clip(np.searchsorted(ref, values), 1, max(len(ref) - 1, 1))
    nearest = np.minimum(
        np.abs(values - ref[i - 1]), np.abs(values - ref[np.minimum(i, len(ref) - 1)])
    )
    return nearest <= 1e-6 * np.maximum(np.abs(values), 1.0)


def _off_support(
    real: np.ndarray, synth: np.ndarray, discrete: bool, decimals: int | None
) -> float:
    """Share of synthetic values no real record has (discrete columns) or not at the real
    precision (columns recorded to fixed decimals); NaN for free-precision columns."""
    if discrete:
        return float(np.mean(~_isin_close(synth, real)))
    if decimals is not None:
        scale = np.maximum(np.abs(synth), 1.0)
        return float(np.mean(np.abs(np.round(synth, decimals) - synth) > 1e-6 * scale))
    return float("nan")


def _spike_excess(real: np.ndarray, synth: np.ndarray) -> float:
    """Share of the most frequent synthetic value minus the real share of that value: a pile-up
    at a range bound shows up here even when the distance statistics are small."""
    values, counts = np.unique(synth, return_counts=True)
    mode = values[counts.argmax()]
    real_share = np.mean(np.abs(real - mode) <= 1e-6 * max(abs(mode), 1.0))
    return float(counts.max() / len(synth) - real_share)


def column_fidelity(
    real: pd.DataFrame,
    synth: pd.DataFrame,
    columns: list[tuple[str, str]],
    discrete: dict[str, tuple[bool, int | None]] | None = None,
) -> MetricResult:
    """Per column: Kolmogorov-Smirnov (numeric) or total variation (categorical, binary) between
    the real and synthetic marginals of the observed values, the Wasserstein-1 distance in units of
    the real interquartile range, the off-support share and the largest spike excess. ``columns``
    holds ``(name, kind)``; ``discrete`` maps a numeric column to (is discrete, decimals) as the
    real data's :class:`core.encoding.marginals.Marginal` found them. Rows worst first;
    value = the worst column's distance."""
    discrete = discrete or {}
    rows = []
    for name, kind in columns:
        row: dict = dict.fromkeys(COLUMN_FIDELITY_COLUMNS, np.nan)
        row |= {"feature": name, "kind": kind, "support": ""}
        a_col, b_col = real[name], synth[name]
        if kind == "numeric":
            a, b = _observed_values(a_col, b_col)
            row["measure"] = "KS"
            if len(a) and len(b):
                is_discrete, decimals = discrete.get(name, (False, None))
                distances = _ks_and_wasserstein(a, b)
                row |= {
                    "distance": distances["ks"],
                    "wasserstein_iqr": distances["wasserstein_iqr"],
                    "off_support": _off_support(a, b, is_discrete, decimals),
                    "support": _support_text(a, is_discrete, decimals),
                    "spike_excess": _spike_excess(a, b),
                }
        else:
            a = a_col.dropna().astype(str)
            b = b_col.dropna().astype(str)
            row["measure"] = "TV"
            if len(a) and len(b):
                p = a.value_counts(normalize=True)
                q = b.value_counts(normalize=True)
                levels = p.index.union(q.index)
                row["distance"] = float(
                    0.5
                    * np.abs(
                        p.reindex(levels, fill_value=0) - q.reindex(levels, fill_value=0)
                    ).sum()
                )
                row["off_support"] = float(np.mean(~b.isin(set(p.index))))
                row["support"] = f"{len(p)} levels"
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMN_FIDELITY_COLUMNS)
    table = table.sort_values("distance", ascending=False, na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    worst = table["distance"].dropna()
    return MetricResult(
        id=MetricId.COLUMN_FIDELITY,
        name="Per-column fidelity (worst column's KS or TV)",
        category="fidelity",
        value=float(worst.iloc[0]) if len(worst) else float("nan"),
        higher_is_better=False,
        ideal=0.0,
        lower_bound=0.0,
        upper_bound=1.0,
        per_feature=table,
        details={
            "worst_column": str(table["feature"].iloc[0]) if len(worst) else "",
            "columns_above_0.10": int((worst > 0.10).sum()),
            "max_off_support": float(table["off_support"].max())
            if table["off_support"].notna().any()
            else float("nan"),
        },
    )


def correlation_difference(real: np.ndarray, synth: np.ndarray) -> MetricResult:
    """Mean absolute difference of the Pearson correlation matrices (dimensions varying in both)."""
    real = np.asarray(real, dtype=np.float64)
    synth = np.asarray(synth, dtype=np.float64)
    keep = (real.std(axis=0) > 0) & (synth.std(axis=0) > 0)
    if keep.sum() < 2:
        raise ConfigError(
            "correlation difference needs at least two varying dimensions in both sets"
        )
    a = np.corrcoef(real[:, keep], rowvar=False)
    b = np.corrcoef(synth[:, keep], rowvar=False)
    iu = np.triu_indices(int(keep.sum()), k=1)
    diff = np.abs(a - b)[iu]
    return MetricResult(
        id=MetricId.CORRELATION,
        name="Correlation matrix difference (mean |r_real - r_syn|)",
        category="fidelity",
        value=float(diff.mean()),
        higher_is_better=False,
        ideal=0.0,
        lower_bound=0.0,
        upper_bound=2.0,
        details={"dimensions": int(keep.sum()), "max": float(diff.max())},
    )


def missingness_agreement(
    real: pd.DataFrame, synth: pd.DataFrame, columns: list[str]
) -> MetricResult:
    """Per column, share missing in real vs synthetic; value = mean absolute difference."""
    rows = [
        {
            "feature": c,
            "real": float(real[c].isna().mean()),
            "synthetic": float(synth[c].isna().mean()),
        }
        for c in columns
    ]
    table = pd.DataFrame(rows, columns=["feature", "real", "synthetic"])
    diff = (table["real"] - table["synthetic"]).abs()
    return MetricResult(
        id=MetricId.MISSINGNESS,
        name="Missingness agreement (mean |difference| of missing shares)",
        category="fidelity",
        value=float(diff.mean()) if len(diff) else 0.0,
        higher_is_better=False,
        ideal=0.0,
        lower_bound=0.0,
        upper_bound=1.0,
        per_feature=table,
    )


def codes_per_record(real_counts: np.ndarray, synth_counts: np.ndarray) -> MetricResult:
    """Wasserstein-1 distance between the distributions of distinct codes per record."""
    return MetricResult(
        id=MetricId.CODES_PER_RECORD,
        name="Codes per record (Wasserstein distance)",
        category="fidelity",
        value=float(stats.wasserstein_distance(real_counts, synth_counts)),
        higher_is_better=False,
        ideal=0.0,
        lower_bound=0.0,
        details={
            "real_mean": float(np.mean(real_counts)),
            "synthetic_mean": float(np.mean(synth_counts)),
        },
    )


def _leave_one_out_ridge(train: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of every 'predict dimension j from all others' ridge regression at once.

    With P = (Xc^T Xc + lambda I)^-1 for centred X, the ridge solution for target j is
    beta_j = -P[-j, j] / P[j, j] (block inversion); one d x d inverse serves all d targets.
    """
    mean = train.mean(axis=0)
    xc = train - mean
    gram = xc.T @ xc + ridge * len(train) * np.eye(train.shape[1])
    precision = np.linalg.inv(gram)
    coef = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(coef, 0.0)
    return coef, mean


def _column_auroc(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each column of ``scores`` for the 0/1 column of ``truth`` (Mann-Whitney, ties mid-rank)."""
    ranks = stats.rankdata(scores, axis=0)
    pos = truth.sum(axis=0)
    neg = len(truth) - pos
    return ((ranks * truth).sum(axis=0) - pos * (pos + 1) / 2) / np.maximum(pos * neg, 1)


def dimension_wise_prediction(
    real_train: np.ndarray,
    synth: np.ndarray,
    real_holdout: np.ndarray,
    names: list[str] | None = None,
    *,
    ridge: float = 1e-3,
) -> MetricResult:
    """EHRDiff fig. 2: each 0/1 dimension predicted from all other dimensions by a linear (ridge)
    model trained on real vs on synthetic data, scored by AUROC on the real holdout; value = R^2
    of the synthetic AUROCs against the real ones. Every 0/1 dimension with both classes in all
    three sets is evaluated (the count is in ``details``)."""
    real_train = np.asarray(real_train, dtype=np.float64)
    synth = np.asarray(synth, dtype=np.float64)
    real_holdout = np.asarray(real_holdout, dtype=np.float64)
    names = names or [f"dim {i}" for i in range(real_train.shape[1])]
    ok = np.all((real_train == 0) | (real_train == 1), axis=0)
    for data in (real_train, synth, real_holdout):
        share = (data > 0.5).mean(axis=0)
        ok &= (share > 0) & (share < 1)
    cols = np.flatnonzero(ok)
    if len(cols) < 2:
        raise ConfigError(
            "dimension-wise prediction needs at least two 0/1 dimensions with both classes in every set"
        )
    truth = (real_holdout[:, cols] > 0.5).astype(np.float64)
    aucs = []
    for train in (real_train, synth):
        coef, mean = _leave_one_out_ridge(train, ridge)
        scores = (real_holdout - mean) @ coef[:, cols]
        aucs.append(_column_auroc(truth, scores))
    table = pd.DataFrame(
        {"feature": [names[j] for j in cols], "auroc_real": aucs[0], "auroc_synthetic": aucs[1]}
    )
    return MetricResult(
        id=MetricId.DIMWISE_PREDICTION,
        name="Dimension-wise prediction R^2 (AUROC, train-on-real vs train-on-synthetic)",
        category="fidelity",
        value=r2_against_identity(aucs[0], aucs[1]),
        higher_is_better=True,
        ideal=1.0,
        upper_bound=1.0,
        per_feature=table,
        details={
            "features_evaluated": len(cols),
            "predictor": f"linear ridge (lambda = {ridge} x n), all other dimensions",
        },
    )
