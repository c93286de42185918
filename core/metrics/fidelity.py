"""Fidelity metrics comparing a synthetic record table with a real one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from core.errors import ConfigError
from core.metrics.base import MetricResult


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
