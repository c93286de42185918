"""Bootstrap resamples and intervals: the one implementation every metric uses.

Resamples are row-index arrays drawn with replacement: of records (:func:`record_resamples`), of
clusters such as patients, whose rows are drawn together so a patient with many image pairs
counts as one unit of evidence (:func:`cluster_resamples`), or of two sets at once
(:func:`two_set_resamples`). A statistic maps a resample to a number (NaN where it is undefined,
say a resample with one label class); :func:`bootstrap_values` keeps the finite ones, and
:func:`interval`, :func:`standard_error` and :func:`normal_ci` summarise them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np

R = TypeVar("R")


def record_resamples(n: int, n_boot: int = 1000, seed: int = 0) -> Iterator[np.ndarray]:
    """``n_boot`` arrays of ``n`` row indices drawn with replacement."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n, n)


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


def two_set_resamples(
    n_a: int, n_b: int, n_boot: int = 1000, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n_boot`` pairs of row-index arrays, one per set (a two-set statistic: real vs synthetic)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n_a, n_a), rng.integers(0, n_b, n_b)


def bootstrap_values(statistic: Callable[[R], float], resamples: Iterable[R]) -> np.ndarray:
    """``statistic`` over the resamples; non-finite values (undefined there) left out."""
    values = np.array([statistic(rows) for rows in resamples], dtype=float)
    return values[np.isfinite(values)]


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values (NaNs when there are none)."""
    if len(values) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def percentile_ci(
    statistic: Callable[[np.ndarray], float],
    resamples: Iterable[np.ndarray],
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(rows)`` over the resamples (non-finite draws skipped)."""
    return interval(bootstrap_values(statistic, resamples), level)


def standard_error(values: np.ndarray) -> float:
    """Standard deviation of bootstrap values (NaN with fewer than two)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def normal_ci(point: float, values: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """``point`` +- ``z`` bootstrap standard errors (1.96: 95%). For statistics that resampling
    biases (a resample repeats rows, which lowers R²-type statistics), where percentile intervals
    can miss the point estimate."""
    se = standard_error(values)
    return point - z * se, point + z * se


def both_classes(y: np.ndarray) -> bool:
    """Whether 0/1 labels hold both classes (an AUROC is defined)."""
    return len(y) > 0 and y.min() != y.max()
