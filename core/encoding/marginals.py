"""What a numeric column's values look like: its precision, its discrete support, its quantiles.

Fitted on the training split and stored in a model's manifest, so decoded values read like the
real ones: integers stay integers, an ordinal scale such as GCS (3..15) or FiO2 in steps of 0.1
is produced on its own values, and no value outside the stored range is produced.

Only aggregates are stored. The discrete support holds a value only when at least
``MIN_SUPPORT_COUNT`` training records have it, so a rare value that could identify someone is
never written into a manifest (its records count towards the nearest kept value). Quantile knots
are quantiles of dequantised values, so none is a recorded value, and the outer ones are the
top-coded range bounds (widened by half a rounding cell).

The spaces a model may see a numeric column in (``ColumnCodec.space``):
- ``scaled`` (the older models): min-max over the stored range; decoding snaps onto the support
  or precision stored beside it;
- ``quantile``: the column's CDF level. A discrete value ``s_i`` maps to its interval
  ``(F(s_{i-1}), F(s_i)]`` (randomly inside it for training, the midpoint otherwise), so the model
  sees a uniform marginal instead of spikes, and decoding is the step-shaped inverse CDF, which
  lands exactly on the support with the right shares. Other values map through piecewise-linear
  quantile knots fitted on dequantised values (a value recorded to d decimals spread over its
  rounding cell) and are rounded back to d decimals on decoding;
- ``normal`` (EHRDiff's default, best by ``benchmarks.marginals``): the normal score of
  that level, ``0.5 + z / 8``, a bell-shaped marginal like TabDDPM's quantile-normal transform.
Values beyond ``[0, 1]`` decode to the bound they passed, but the bound then holds only the
share of the model's overshoot, not the whole clipped tail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import ndtr, ndtri

MIN_SUPPORT_COUNT = 10  # k: a value enters the stored support only when this many records hold it
MAX_SUPPORT = 40  # more distinct values than this: continuous, with a precision
SUPPORT_SHARE = 0.97  # discrete only when the kept values hold this share of the records
PRECISION_SHARE = 0.85  # HR_min: 88% whole numbers, the rest hourly means (58.333)
MAX_DECIMALS = 4
MAX_KNOTS = 64
# The ``normal`` space: normal scores of the CDF level, 0.5 + z / 8, so z in [-4, 4] fills [0, 1]
# (TabDDPM's quantile-normal transform, kept inside the models' [0, 1] range).
NORMAL_SCALE = 8.0
_Z_MAX = NORMAL_SCALE / 2


def _decimals(values: np.ndarray) -> int | None:
    """Fewest decimals that hold 85% of the values (the odd rest, say an FiO2 of 0.3667, is
    rounded on decoding), or None when more than MAX_DECIMALS."""
    scale = np.maximum(np.abs(values), 1.0)
    for d in range(MAX_DECIMALS + 1):
        # Relative tolerance of float32 storage: 0.35 read as float32 is 0.34999999.
        if np.mean(np.abs(np.round(values, d) - values) <= 1e-6 * scale) >= PRECISION_SHARE:
            return d
    return None


def significant(values: np.ndarray, digits: int) -> np.ndarray:
    """Rounded to ``digits`` significant digits (6 undoes float32 storage: 0.69999999 -> 0.7)."""
    out = np.asarray(values, dtype=np.float64)
    nz = out != 0
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(out[nz]))))
    rounded = out.copy()
    rounded[nz] = np.round(out[nz] * scale) / scale
    return rounded


def _half_cell(decimals: int | None) -> float:
    return 0.0 if decimals is None else 0.5 * 10.0**-decimals


def _round_knots(knots: np.ndarray, decimals: int | None) -> np.ndarray:
    """Knots are quantiles of dequantised values, so none is a recorded value; rounded (two
    decimals finer than the column, or four significant digits) to keep the manifest short."""
    if decimals is not None:
        return np.round(knots, decimals + 2)
    return significant(knots, 4)


@dataclass(frozen=True)
class Marginal:
    lo: float  # stored (top-coded) range, original units
    hi: float
    decimals: int | None = None
    support: tuple[float, ...] = ()  # discrete: values held by >= k training records, ascending
    cdf: tuple[float, ...] = ()  # discrete: cumulative share up to each support value
    knots: tuple[float, ...] = ()  # continuous: quantiles at ``levels``, non-decreasing
    levels: tuple[float, ...] = ()

    @property
    def discrete(self) -> bool:
        return bool(self.support)

    @classmethod
    def fit(
        cls,
        values: np.ndarray,
        lo: float,
        hi: float,
        min_count: int = MIN_SUPPORT_COUNT,
        holders: np.ndarray | None = None,
    ) -> Marginal:
        """``holders`` names the record each value belongs to when a record has several (the
        cells of a series): a value then enters the support only when ``min_count`` distinct
        records hold it, not ``min_count`` cells of one patient."""
        v = np.asarray(values, dtype=np.float64)
        keep = np.isfinite(v)
        v = v[keep]
        holders = None if holders is None else np.asarray(holders)[keep]
        if v.size == 0 or not hi > lo:
            return cls(float(lo), float(hi))
        decimals = _decimals(v)
        if decimals is not None:  # outward onto the column's grid: a bound of 0.61 for a lab
            step = 10.0**-decimals  # recorded to 0.1 would itself be an off-grid value
            lo = float(np.round(np.floor(lo / step + 1e-9) * step, decimals))
            hi = float(np.round(np.ceil(hi / step - 1e-9) * step, decimals))
        inside = np.clip(v, lo, hi)
        # Six significant digits: a 0.7 read as float32 (0.69999999) is stored as 0.7.
        uniq, inverse, counts = np.unique(
            significant(inside, 6), return_inverse=True, return_counts=True
        )
        if holders is None:
            common = counts >= min_count
        else:
            pairs = np.unique(np.stack([inverse, holders]), axis=1)  # (value, record) once each
            common = np.bincount(pairs[0], minlength=len(uniq)) >= min_count
        # A long tail of rare values would all be merged onto the last kept one: continuous then.
        if len(uniq) <= MAX_SUPPORT and counts[common].sum() >= SUPPORT_SHARE * v.size:
            support = uniq[common]
            # Each rare value's records count towards the nearest kept value.
            nearest = np.abs(uniq[:, None] - support[None, :]).argmin(axis=1)
            held = np.bincount(nearest, weights=counts, minlength=len(support))
            cdf = np.cumsum(held) / held.sum()
            cdf[-1] = 1.0
            return cls(
                float(lo),
                float(hi),
                decimals,
                tuple(float(s) for s in support),
                tuple(float(c) for c in cdf),
            )
        # Dequantise: a value recorded to d decimals stands for its rounding cell, so the knots
        # are quantiles of values spread uniformly over their cells (seeded, so a fit is
        # reproducible). Without this, a lab reported in steps of 0.1 has a jump at every value
        # and the model would have to learn a comb of spikes.
        half = _half_cell(decimals)
        spread = inside + np.random.default_rng(0).uniform(-half, half, inside.size)
        n_knots = int(np.clip(v.size // (2 * min_count), 2, MAX_KNOTS))
        levels = np.linspace(0.0, 1.0, n_knots + 1)
        knots = _round_knots(np.quantile(spread, levels), decimals)
        knots[0], knots[-1] = lo - half, hi + half
        knots = np.clip(np.maximum.accumulate(knots), lo - half, hi + half)
        return cls(
            float(lo),
            float(hi),
            decimals,
            knots=tuple(float(k) for k in knots),
            levels=tuple(float(q) for q in levels),
        )

    # --- values <-> [0, 1] -------------------------------------------------------------------
    def snap(self, values: np.ndarray) -> np.ndarray:
        """Onto the nearest support value, else rounded to the column's precision."""
        v = np.clip(np.asarray(values, dtype=np.float64), self.lo, self.hi)
        if self.support:
            s = np.asarray(self.support)
            return s[np.abs(v[..., None] - s).argmin(axis=-1)]
        if self.decimals is not None:
            return np.clip(np.round(v, self.decimals), self.lo, self.hi)
        return v

    def to_unit(self, values: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Through the CDF. A value the inverse CDF holds on an interval of levels (a support
        value, or a run of equal knots) lands uniformly inside it with ``rng``, mid-way without."""
        v = np.asarray(values, dtype=np.float64)
        if self.support:
            s = np.asarray(self.support)
            upper = np.asarray(self.cdf)
            lower = np.concatenate([[0.0], upper[:-1]])
            i = np.abs(v[..., None] - s).argmin(axis=-1)
            a, b = lower[i], upper[i]
        elif self.knots:
            k, q = np.asarray(self.knots), np.asarray(self.levels)
            vc = np.clip(v, self.lo, self.hi)
            half = _half_cell(self.decimals)
            if half:  # a recorded value stands for its rounding cell (see fit)
                vc = vc + (rng.uniform(-half, half, np.shape(vc)) if rng is not None else 0.0)
            left = np.searchsorted(k, vc, side="left")
            right = np.searchsorted(k, vc, side="right")
            j = np.clip(left, 1, len(k) - 1)
            width = k[j] - k[j - 1]
            safe = np.where(width > 0, width, 1.0)
            linear = q[j - 1] + np.clip((vc - k[j - 1]) / safe, 0.0, 1.0) * (q[j] - q[j - 1])
            on_knot = right > left
            a = np.where(on_knot, q[np.minimum(left, len(q) - 1)], linear)
            b = np.where(on_knot, q[np.maximum(right - 1, 0)], linear)
        else:
            span = self.hi - self.lo
            return np.clip((v - self.lo) / span, 0.0, 1.0) if span > 0 else np.zeros_like(v)
        if rng is None:
            return (a + b) / 2
        return a + (b - a) * rng.random(np.shape(v))

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF: step-shaped onto the support, piecewise linear between knots."""
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.support:
            i = np.searchsorted(np.asarray(self.cdf), u, side="left")
            return np.asarray(self.support)[np.clip(i, 0, len(self.support) - 1)]
        if self.knots:
            return self.snap(np.interp(u, self.levels, self.knots))  # rounds into the cell
        return self.snap(self.lo + u * (self.hi - self.lo))

    # --- the model's space -------------------------------------------------------------------
    @staticmethod
    def level_to_space(u: np.ndarray, space: str) -> np.ndarray:
        """A CDF level to the model's coordinate: itself (``quantile``) or its normal score."""
        if space == "normal":
            z = ndtri(np.clip(u, ndtr(-_Z_MAX), ndtr(_Z_MAX)))
            return 0.5 + z / NORMAL_SCALE
        return u

    @staticmethod
    def space_to_level(x: np.ndarray, space: str) -> np.ndarray:
        if space == "normal":
            return ndtr((np.asarray(x, dtype=np.float64) - 0.5) * NORMAL_SCALE)
        return x

    def to_space(
        self, values: np.ndarray, space: str, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        return self.level_to_space(self.to_unit(values, rng), space)

    def from_space(self, x: np.ndarray, space: str) -> np.ndarray:
        return self.from_unit(self.space_to_level(x, space))

    # --- persistence -------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw: dict) -> Marginal:
        return cls(
            float(raw["lo"]),
            float(raw["hi"]),
            None if raw.get("decimals") is None else int(raw["decimals"]),
            tuple(float(v) for v in raw.get("support", ())),
            tuple(float(v) for v in raw.get("cdf", ())),
            tuple(float(v) for v in raw.get("knots", ())),
            tuple(float(v) for v in raw.get("levels", ())),
        )
