"""Cluster (e.g. patient-level) bootstrap confidence intervals.

Rows of one cluster are resampled together, so a patient with many image pairs counts as one
unit of evidence: the interval reflects how many patients a verdict rests on, not how many pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def cluster_resamples(
    clusters: Sequence[str] | np.ndarray, n_boot: int = 1000, seed: int = 0
) -> list[np.ndarray]:
    """``n_boot`` row-index arrays, each drawing the clusters with replacement."""
    labels = np.asarray(clusters)
    ids, inverse = np.unique(labels, return_inverse=True)
    rows = [np.flatnonzero(inverse == k) for k in range(len(ids))]
    rng = np.random.default_rng(seed)
    return [
        np.concatenate([rows[k] for k in rng.integers(0, len(ids), len(ids))])
        for _ in range(n_boot)
    ]


def percentile_ci(
    statistic: Callable[[np.ndarray], float],
    resamples: list[np.ndarray],
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(rows)`` over the resamples (non-finite draws skipped)."""
    values = np.array([statistic(rows) for rows in resamples], dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
