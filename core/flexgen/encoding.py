"""Cohort <-> the two VAE inputs of FLEXGEN-EHR, and back.

- static: one [0, 1] vector per record from the EHRDiff :class:`VectorEncoding` of the static
  columns (one-hot levels, explicit missingness, top-coded numeric ranges);
- temporal: ``[N, T, 2D]``: per variable a value channel in [0, 1] (0 where unobserved) and an
  observation-mask channel. Values map per variable over a top-coded range, in the spaces of
  static columns (:mod:`core.encoding.marginals`): min-max with log1p for positive heavy-tailed
  variables (``scaled``, the default) or through the variable's CDF (``quantile``, ``normal``);
  decoding lands on the variable's support and precision either way. A series value enters the
  support only when enough distinct records hold it, not enough cells.

A record *has* a modality when any of its static values, or any temporal cell, is observed; a
record with neither part observed carries no information and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.cohort import Cohort, TemporalData
from core.data.records import EHRTable
from core.encoding.marginals import Marginal
from core.encoding.vectors import CDF_SPACES, HEAVY_TAIL_RATIO, VectorEncoding, published_range
from core.errors import CheckpointError, CohortError

MIN_STEPS = 4


def modality_presence(cohort: Cohort) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(has_static, has_temporal)`` per record."""
    n = cohort.n_records
    has_static = (
        np.zeros(n, bool) if cohort.static is None else cohort.static.notna().any(axis=1).to_numpy()
    )
    has_temporal = (
        np.zeros(n, bool) if cohort.temporal is None else cohort.temporal.mask.any(axis=(1, 2))
    )
    return has_static, has_temporal


def check_trainable(cohort: Cohort) -> tuple[np.ndarray, np.ndarray]:
    """Refuse cohorts FLEXGEN-EHR cannot learn from, saying which model fits instead."""
    if cohort.temporal is None or cohort.static is None:
        have = ", ".join(cohort.modalities) or "nothing"
        lacks = "temporal" if cohort.temporal is None else "static"
        raise CohortError(
            f"FLEXGEN-EHR needs static and temporal parts; cohort '{cohort.name}' has no {lacks} "
            f"part (it has: {have}). EHRDiff fits static-only, summary or code cohorts."
        )
    if cohort.temporal.n_steps < MIN_STEPS:
        raise CohortError(
            f"the time series have {cohort.temporal.n_steps} step(s); FLEXGEN-EHR needs at least "
            f"{MIN_STEPS} grid steps"
        )
    has_s, has_t = modality_presence(cohort)
    if not has_s.any():
        raise CohortError("no record has any static value; every record misses the static part")
    if not has_t.any():
        raise CohortError("no record has any temporal observation; every record misses the series")
    empty = ~(has_s | has_t)
    if empty.any():
        raise CohortError(
            f"{int(empty.sum())} record(s) have neither static values nor temporal observations "
            f"(first: {cohort.record_ids[np.flatnonzero(empty)[0]]}); remove them"
        )
    return has_s, has_t


def shared_measurements(cohort: Cohort) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Variables both parts measure (a numeric static column named like a series variable, e.g.
    PhysioNet's admission Weight and its Weight series): ``([N, k], [N, k])`` of each record's
    series mean and static value in original units, NaN where unknown; ``(None, None)`` if none."""
    if cohort.static is None or cohort.temporal is None:
        return None, None
    t = cohort.temporal
    series = {v.lower(): j for j, v in enumerate(t.variables)}
    pairs = [
        (f.name, series[f.name.lower()])
        for f in cohort.static_features
        if f.kind == "numeric" and f.name.lower() in series
    ]
    if not pairs:
        return None, None
    static = np.stack([cohort.static[name].to_numpy(dtype=float) for name, _ in pairs], axis=1)
    cols = [j for _, j in pairs]
    seen = t.mask[..., cols]
    total = np.where(seen, np.nan_to_num(t.values[..., cols]), 0.0).sum(axis=1)
    count = seen.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        temporal = np.where(count > 0, total / count, np.nan)
    return temporal, static


def static_table(cohort: Cohort) -> EHRTable:
    return EHRTable(cohort.record_ids, cohort.static, cohort.static_features, None)


@dataclass(frozen=True)
class TemporalScaling:
    variables: tuple[str, ...]
    units: tuple[str | None, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    log: tuple[bool, ...]
    n_steps: int
    step_hours: float
    space: str = "scaled"
    marginals: tuple[Marginal, ...] = field(default=())  # per variable; empty in older models

    @classmethod
    def fit(
        cls, temporal: TemporalData, rows: np.ndarray, space: str = "scaled"
    ) -> TemporalScaling:
        lo, hi, log, marginals = [], [], [], []
        for j in range(len(temporal.variables)):
            observed = temporal.mask[rows, :, j]
            v = temporal.values[rows, :, j][observed].astype(np.float64)
            holders = np.nonzero(observed)[0]  # the record of each cell
            if v.size == 0:
                v = np.zeros(1)
            heavy = bool(
                v.min() >= 0 and np.quantile(v, 0.99) > HEAVY_TAIL_RATIO * max(np.median(v), 1e-9)
            )
            a, b = published_range(v)
            marginals.append(Marginal.fit(v, a, b, holders=holders if holders.size else None))
            if heavy:
                a, b = float(np.log1p(a)), float(np.log1p(b))
            lo.append(a)
            hi.append(b)
            log.append(heavy)
        return cls(
            tuple(temporal.variables),
            tuple(temporal.units),
            tuple(lo),
            tuple(hi),
            tuple(log),
            temporal.n_steps,
            float(temporal.step_hours),
            space,
            tuple(marginals),
        )

    def scale(self, values: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``[..., D]`` values to [0, 1]; ``rng`` spreads ties in the quantile space (training)."""
        if self.space in CDF_SPACES:
            return np.stack(
                [m.to_space(values[..., j], self.space, rng) for j, m in enumerate(self.marginals)],
                axis=-1,
            )
        lo, hi, log = (np.asarray(a) for a in (self.lo, self.hi, self.log))
        with np.errstate(invalid="ignore"):
            t = np.where(log, np.log1p(np.maximum(values, 0)), values)
        span = np.where(hi > lo, hi - lo, 1.0)
        return np.clip((t - lo) / span, 0.0, 1.0)

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        if self.space in CDF_SPACES:
            return np.stack(
                [m.from_space(scaled[..., j], self.space) for j, m in enumerate(self.marginals)],
                axis=-1,
            )
        lo, hi, log = (np.asarray(a) for a in (self.lo, self.hi, self.log))
        t = np.clip(scaled, 0.0, 1.0) * (hi - lo) + lo
        values = np.where(log, np.expm1(np.where(log, t, 0.0)), t)
        if self.marginals:
            values = np.stack(
                [m.snap(values[..., j]) for j, m in enumerate(self.marginals)], axis=-1
            )
        return values


@dataclass(frozen=True)
class FlexGenEncoding:
    static: VectorEncoding
    temporal: TemporalScaling
    label_name: str | None = None
    label_classes: tuple[str, ...] = ()

    @property
    def static_dim(self) -> int:
        return self.static.dim

    @property
    def temporal_channels(self) -> int:
        return 2 * len(self.temporal.variables)

    @classmethod
    def fit(cls, cohort: Cohort, numeric_space: str = "scaled") -> FlexGenEncoding:
        has_s, has_t = check_trainable(cohort)
        static = VectorEncoding.fit(
            static_table(cohort.subset(np.flatnonzero(has_s))), numeric_space
        )
        temporal = TemporalScaling.fit(cohort.temporal, np.flatnonzero(has_t), numeric_space)
        return cls(static, temporal, cohort.label_name, cohort.label_classes)

    def check_compatible(self, cohort: Cohort) -> None:
        check_trainable(cohort)
        self.static.check_compatible(static_table(cohort))
        t = cohort.temporal
        if tuple(t.variables) != self.temporal.variables:
            missing = [v for v in self.temporal.variables if v not in t.variables][:5]
            extra = [v for v in t.variables if v not in self.temporal.variables][:5]
            raise CohortError(
                "the cohort's time-series variables differ from the model's "
                f"(missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})"
            )
        if t.n_steps != self.temporal.n_steps:
            raise CohortError(
                f"the cohort's series have {t.n_steps} steps; the model was trained on "
                f"{self.temporal.n_steps} steps of {self.temporal.step_hours:g} h"
            )

    # --- encode ----------------------------------------------------------------------------------
    def static_inputs(self, cohort: Cohort, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.static.encode(static_table(cohort), rng)

    def temporal_inputs(self, cohort: Cohort, rng: np.random.Generator | None = None) -> np.ndarray:
        t = cohort.temporal
        scaled = np.where(t.mask, self.temporal.scale(np.nan_to_num(t.values), rng), 0.0)
        return np.concatenate([scaled, t.mask], axis=2).astype(np.float32)

    # --- decode ----------------------------------------------------------------------------------
    def decode_static(self, x: np.ndarray, record_ids: np.ndarray) -> pd.DataFrame:
        return self.static.decode(x, record_ids).static

    def decode_temporal(self, scaled: np.ndarray, observed: np.ndarray) -> TemporalData:
        """Values in original units where ``observed`` (bool ``[N, T, D]``), NaN elsewhere."""
        values = np.where(observed, self.temporal.unscale(scaled), np.nan).astype(np.float32)
        return TemporalData(
            values=values,
            mask=observed.astype(bool),
            variables=self.temporal.variables,
            units=self.temporal.units,
            step_hours=self.temporal.step_hours,
        )

    # --- persistence -----------------------------------------------------------------------------
    def to_json(self) -> dict:
        t = self.temporal
        return {
            "static": self.static.to_json(),
            "temporal": {
                "variables": list(t.variables),
                "units": list(t.units),
                "lo": list(t.lo),
                "hi": list(t.hi),
                "log": list(t.log),
                "n_steps": t.n_steps,
                "step_hours": t.step_hours,
                "space": t.space,
                "marginals": [m.to_json() for m in t.marginals],
            },
            "label_name": self.label_name,
            "label_classes": list(self.label_classes),
        }

    @classmethod
    def from_json(cls, raw: dict) -> FlexGenEncoding:
        try:
            t = raw["temporal"]
            temporal = TemporalScaling(
                tuple(t["variables"]),
                tuple(t["units"]),
                tuple(float(v) for v in t["lo"]),
                tuple(float(v) for v in t["hi"]),
                tuple(bool(v) for v in t["log"]),
                int(t["n_steps"]),
                float(t["step_hours"]),
                t.get("space", "scaled"),
                tuple(Marginal.from_json(m) for m in t.get("marginals", ())),
            )
            return cls(
                VectorEncoding.from_json(raw["static"]),
                temporal,
                raw.get("label_name"),
                tuple(raw.get("label_classes", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid FLEXGEN-EHR encoding in manifest ({exc})") from None
