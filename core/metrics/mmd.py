"""Maximum mean discrepancy between real and synthetic records: exact, or by blocks at scale."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from core.errors import ConfigError
from core.metrics.base import MetricResult
from core.metrics.ids import MetricId


def _as_tensor(x: np.ndarray, device: torch.device | str) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d.clamp_min_(0.0)


def median_heuristic_bandwidth(
    x: np.ndarray, y: np.ndarray, sample: int = 2000, seed: int = 0
) -> float:
    """Median pairwise Euclidean distance of the pooled data (on a stated subsample)."""
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([x, y])
    pick = pooled[rng.choice(len(pooled), size=min(sample, len(pooled)), replace=False)]
    t = _as_tensor(pick, "cpu")
    d = _sq_dists(t, t)
    iu = torch.triu_indices(len(t), len(t), offset=1)
    med = float(d[iu[0], iu[1]].sqrt().median())
    return med if med > 0 else 1.0


EXACT_MMD_RECORDS = 5_000  # per set; above it, the block estimator (stated in details)
MMD_BLOCK_RECORDS = 1_000  # records of each set per block
MIN_BLOCKS = 10  # the interval's spread needs enough blocks (Student t over blocks)


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, gamma: float, same: bool, block: int) -> float:
    """Sum of the Gaussian kernel over all pairs (without the diagonal when ``same``)."""
    total = 0.0
    for i in range(0, len(a), block):
        ai = a[i : i + block]
        for j in range(0, len(b), block):
            k = torch.exp(-gamma * _sq_dists(ai, b[j : j + block]))
            total += float(k.sum(dtype=torch.float64))
    return total - len(a) if same else total  # the diagonal: k(x, x) = 1


def _unbiased_mmd2(x: torch.Tensor, y: torch.Tensor, gamma: float, block: int) -> float:
    m, n = len(x), len(y)
    return (
        _kernel_sum(x, x, gamma, True, block) / (m * (m - 1))
        + _kernel_sum(y, y, gamma, True, block) / (n * (n - 1))
        - 2 * _kernel_sum(x, y, gamma, False, block) / (m * n)
    )


def mmd(
    real: np.ndarray,
    synth: np.ndarray,
    *,
    bandwidth: float | None = None,
    max_records: int | None = None,
    exact_up_to: int = EXACT_MMD_RECORDS,
    block_records: int = MMD_BLOCK_RECORDS,
    block: int = 4096,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> MetricResult:
    """Unbiased Gaussian-kernel MMD^2.

    Exact over all pairs while neither set has more than ``exact_up_to`` records. Above it, the
    block estimator (Zaremba, Gretton & Blaschko, NeurIPS 2013): both sets shuffled and cut into
    the same number of blocks of about ``block_records`` records each, the unbiased MMD^2 of each
    block pair averaged; each block is unbiased, so the mean is too, and the blocks' spread gives
    a 95% interval. Time grows as n x block size instead of n^2. ``bandwidth`` defaults to the
    median heuristic (reported). ``max_records`` optionally draws a stated random subsample of
    each set first.
    """
    real = np.asarray(real, dtype=np.float32)
    synth = np.asarray(synth, dtype=np.float32)
    if real.shape[1] != synth.shape[1]:
        raise ConfigError("MMD needs equal widths")
    if len(real) < 2 or len(synth) < 2:
        raise ConfigError("MMD needs at least two records in each set")
    rng = np.random.default_rng(seed)
    sub = None
    cut = max_records is not None and max(len(real), len(synth)) > max_records
    if max_records is not None:
        sub = max_records
        if len(real) > max_records:
            real = real[rng.choice(len(real), max_records, replace=False)]
        if len(synth) > max_records:
            synth = synth[rng.choice(len(synth), max_records, replace=False)]
    h = bandwidth or median_heuristic_bandwidth(real, synth, seed=seed)
    gamma = 1.0 / (2.0 * h * h)
    m, n = len(real), len(synth)
    ci, blocks = None, 1
    if max(m, n) <= exact_up_to:
        value = _unbiased_mmd2(_as_tensor(real, device), _as_tensor(synth, device), gamma, block)
    else:
        # at least MIN_BLOCKS: with 2 blocks the spread is a guess (a walk-through found the
        # exact value inside the "95%" interval 87.5% of the time at 1,600 vs 6,000 records)
        blocks = max(MIN_BLOCKS, min(m, n) // max(block_records, 2))
        parts = zip(
            np.array_split(rng.permutation(m), blocks),
            np.array_split(rng.permutation(n), blocks),
            strict=True,
        )
        per_block = np.array(
            [
                _unbiased_mmd2(
                    _as_tensor(real[a], device), _as_tensor(synth[b], device), gamma, block
                )
                for a, b in parts
            ]
        )
        value = float(per_block.mean())
        half = (
            float(stats.t.ppf(0.975, blocks - 1)) * float(per_block.std(ddof=1)) / np.sqrt(blocks)
        )
        ci = (value - half, value + half)
    return MetricResult(
        id=MetricId.MMD,
        name="MMD (Gaussian kernel, unbiased)",
        category="fidelity",
        value=float(value),
        higher_is_better=False,
        ideal=0.0,
        ci=ci,
        details={
            "bandwidth": h,
            "bandwidth_rule": "median heuristic" if bandwidth is None else "given",
            "subsample": sub,
            "subsampled": cut,
            "n_real": m,
            "n_synthetic": n,
            "exact": not cut and blocks == 1,
            "estimator": "all pairs"
            if blocks == 1
            else f"block estimator: {blocks} blocks of about {m // blocks:,} + {n // blocks:,} records",
            "blocks": blocks,
        },
    )
