"""AUROC and average precision of scores for 0/1 labels, as scikit-learn computes them, with
records counted by weights.

A bootstrap resample is the same records counted with multiplicities, so its score is one
``bincount`` over the scores' ranks, computed once (:class:`Ranking`), instead of a copy and a
scikit-learn call per resample, which checks its inputs and sorts every time: a Review's 200
resamples of four TSTR scores took 8 s that way, 0.1 s this way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ranking:
    """Records' scores as ranks of their distinct values (ties share one), and their labels."""

    groups: np.ndarray
    y: np.ndarray
    n_groups: int

    @classmethod
    def of(cls, y: np.ndarray, scores: np.ndarray) -> Ranking:
        groups = np.unique(np.asarray(scores), return_inverse=True)[1].ravel()
        return cls(
            groups, np.asarray(y, dtype=np.float64), int(groups.max()) + 1 if len(groups) else 0
        )

    def _per_group(self, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Weighted positives and negatives at each distinct score, lowest score first."""
        w = np.ones(len(self.y)) if weights is None else np.asarray(weights, dtype=np.float64)
        pos = np.bincount(self.groups, weights=w * self.y, minlength=self.n_groups)
        neg = np.bincount(self.groups, weights=w * (1.0 - self.y), minlength=self.n_groups)
        return pos, neg

    def auroc(self, weights: np.ndarray | None = None) -> float:
        """Mann-Whitney AUROC (ties count half); NaN without both classes."""
        pos, neg = self._per_group(weights)
        total = pos.sum() * neg.sum()
        if total == 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float(np.sum(pos * (below + 0.5 * neg)) / total)

    def average_precision(self, weights: np.ndarray | None = None) -> float:
        """Sum over thresholds, highest score first, of the recall gained times the precision
        there (scikit-learn's ``average_precision_score``); NaN without both classes."""
        pos, neg = self._per_group(weights)
        if pos.sum() == 0 or neg.sum() == 0:
            return float("nan")
        pos, neg = pos[::-1], neg[::-1]
        tp, fp = np.cumsum(pos), np.cumsum(neg)
        kept = pos > 0  # only thresholds that gain recall add to the sum
        return float(np.sum(pos[kept] * tp[kept] / (tp[kept] + fp[kept])) / tp[-1])

    def over_resamples(self, statistic: str, resamples: Iterable[np.ndarray]) -> np.ndarray:
        """``statistic`` ("auroc" or "average_precision") of every resample (row-index arrays),
        NaN where a resample holds one class only."""
        fn = {"auroc": self.auroc, "average_precision": self.average_precision}[statistic]
        n = len(self.y)
        return np.array([fn(np.bincount(rows, minlength=n)) for rows in resamples], dtype=float)


def auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of ``scores`` for the 0/1 labels ``y`` (scikit-learn's number, faster)."""
    return Ranking.of(y, scores).auroc()
