"""Record table <-> float vectors in [0, 1] for the diffusion model, and back.

- binary: 0/1;
- numeric: top-coded to the training range (0.5th..99.5th percentile rounded outward to two
  significant digits, so no stored bound is a patient's value), then mapped to [0, 1] in one of
  the spaces of :mod:`core.encoding.marginals`: ``scaled``, min-max after an optional log1p for
  positive heavy-tailed columns (the metrics' space, and the models trained before marginals were
  stored), or through the column's CDF (``quantile``, or its normal scores, ``normal``: the
  models' space). Decoded values stay within the range, in original units, on the column's
  support or precision;
- categorical: one-hot, decoded by argmax;
- codes: 0/1 per code, decoded by thresholding at 0.5;
- missing values: an explicit indicator dimension (shared by columns that are always missing
  together, e.g. the five summaries of one lab), decoded as NaN when above 0.5. The value slot of
  a missing entry holds the training mean so it carries no signal of its own (in the CDF spaces:
  the median level, or noise from the column's own marginal when encoding for training).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from core.data.cohort import FeatureSpec
from core.data.records import EHRTable, codes_from_binary
from core.encoding.marginals import Marginal, significant
from core.errors import CheckpointError, CohortError

NUMERIC_SPACES = ("scaled", "quantile", "normal")
CDF_SPACES = ("quantile", "normal")  # numeric values through their CDF (core.encoding.marginals)

HEAVY_TAIL_RATIO = 10.0
# Scaling bounds are top-coded: a column's range is its 0.5th..99.5th percentile rounded outward to
# two significant digits, so no bound stored in a checkpoint is one patient's actual value.
BOUND_QUANTILE = 0.005


def _round_outward(value: float, down: bool) -> float:
    if value == 0 or not np.isfinite(value):
        return float(value)
    scale = 10.0 ** (np.floor(np.log10(abs(value))) - 1)
    return float((np.floor if down else np.ceil)(value / scale) * scale)


def published_range(values: np.ndarray) -> tuple[float, float]:
    lo = _round_outward(float(np.quantile(values, BOUND_QUANTILE)), down=True)
    hi = _round_outward(float(np.quantile(values, 1 - BOUND_QUANTILE)), down=False)
    return lo, hi


def enclosing_range(values: np.ndarray) -> tuple[float, float]:
    """The rule of :func:`published_range` over all values: the smallest and the largest rounded
    outward to two significant digits, one rounding step further where the rounding met a
    recorded value, so every value lies strictly inside and no bound is a patient's value (a
    floor of 0 stays 0: non-negative data keeps its natural floor)."""
    # six significant digits first: a 0.01 stored as float32 (0.0099999998) is 0.01
    lo, hi = (float(significant(np.asarray([v]), 6)[0]) for v in (np.min(values), np.max(values)))
    out = []
    for value, down in ((lo, True), (hi, False)):
        bound = _round_outward(value, down)
        if bound == value and value != 0:
            step = 10.0 ** (np.floor(np.log10(abs(value))) - 1)
            bound = float(bound - step if down else bound + step)
        if down and lo >= 0 > bound:
            bound = 0.0
        out.append(bound)
    return out[0], out[1]


def _group_name(columns: tuple[str, ...]) -> str:
    """'Height missing', 'HR_* missing' (summaries of one variable), or 'Height/Weight missing'."""
    prefixes = {c.rsplit("_", 1)[0] for c in columns}
    if len(columns) > 1 and len(prefixes) == 1 and all("_" in c for c in columns):
        return f"{prefixes.pop()}_* missing"
    return "/".join(columns) + " missing"


@dataclass(frozen=True)
class ColumnCodec:
    name: str
    kind: str  # binary | categorical | numeric
    start: int
    width: int
    unit: str | None = None
    categories: tuple[str, ...] = ()
    lo: float = 0.0
    hi: float = 1.0
    log: bool = False
    fill: float = 0.0
    missing_dim: int | None = None
    space: str = "scaled"  # numeric: one of NUMERIC_SPACES (see the module docstring)
    marginal: Marginal | None = None  # numeric: precision, support and quantiles


@dataclass(frozen=True)
class VectorEncoding:
    columns: tuple[ColumnCodec, ...]
    missing_groups: tuple[tuple[str, ...], ...]  # column names per indicator dim, in order
    static_dim: int  # value dims + indicator dims
    vocabulary: tuple[str, ...]
    code_system: str = ""
    code_granularity: str = ""
    label_name: str | None = None
    label_classes: tuple[str, ...] = ()

    @property
    def dim(self) -> int:
        return self.static_dim + len(self.vocabulary)

    @property
    def dim_names(self) -> list[str]:
        names: list[str] = []
        for c in self.columns:
            if c.kind == "categorical":
                names.extend(f"{c.name}={v}" for v in c.categories)
            else:
                names.append(c.name)
        names.extend(_group_name(g) for g in self.missing_groups)
        names.extend(self.vocabulary)
        return names

    @property
    def binary_dims(self) -> np.ndarray:
        """Mask of dimensions that are 0/1 indicators (codes, binaries, one-hots, missing flags)."""
        mask = np.ones(self.dim, dtype=bool)
        for c in self.columns:
            if c.kind == "numeric":
                mask[c.start] = False
        return mask

    # --- fitting ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, table: EHRTable, numeric_space: str = "scaled") -> VectorEncoding:
        if numeric_space not in NUMERIC_SPACES:
            raise CohortError(f"unknown numeric space '{numeric_space}' (one of {NUMERIC_SPACES})")
        columns: list[ColumnCodec] = []
        pos = 0
        pending: list[tuple[FeatureSpec, dict]] = []
        group_of_mask: dict[bytes, int] = {}
        groups: list[list[str]] = []
        if table.static is not None:
            for spec in table.static_features:
                col = table.static[spec.name]
                missing = col.isna().to_numpy()
                group = None
                if missing.any():
                    key = np.packbits(missing).tobytes()
                    if key not in group_of_mask:
                        group_of_mask[key] = len(groups)
                        groups.append([])
                    group = group_of_mask[key]
                    groups[group].append(spec.name)
                params: dict = {"group": group}
                if spec.kind == "categorical":
                    cats = tuple(spec.categories) or tuple(sorted(map(str, col.dropna().unique())))
                    if not cats:
                        raise CohortError(f"categorical column '{spec.name}' has no observed level")
                    params |= {"categories": cats, "width": len(cats)}
                elif spec.kind == "numeric":
                    v = col.to_numpy(dtype=float)
                    v = v[~np.isnan(v)]
                    if v.size == 0:
                        v = np.zeros(1)
                    log = bool(
                        v.min() >= 0
                        and np.quantile(v, 0.99) > HEAVY_TAIL_RATIO * max(np.median(v), 1e-9)
                    )
                    raw_lo, raw_hi = published_range(v)
                    t = np.log1p(v) if log else v
                    lo, hi = (
                        (float(np.log1p(raw_lo)), float(np.log1p(raw_hi)))
                        if log
                        else (raw_lo, raw_hi)
                    )
                    scaled = (
                        np.clip((t - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(t)
                    )
                    params |= {
                        "lo": lo,
                        "hi": hi,
                        "log": log,
                        "fill": float(scaled.mean()) if numeric_space == "scaled" else 0.5,
                        "width": 1,
                        "space": numeric_space,
                        "marginal": Marginal.fit(v, raw_lo, raw_hi),
                    }
                else:
                    v = col.to_numpy(dtype=float)
                    params |= {
                        "fill": float(np.nanmean(v)) if (~np.isnan(v)).any() else 0.0,
                        "width": 1,
                    }
                pending.append((spec, params))
        for spec, params in pending:
            columns.append(
                ColumnCodec(
                    name=spec.name,
                    kind=spec.kind,
                    start=pos,
                    width=params["width"],
                    unit=spec.unit,
                    categories=params.get("categories", ()),
                    lo=params.get("lo", 0.0),
                    hi=params.get("hi", 1.0),
                    log=params.get("log", False),
                    fill=params.get("fill", 0.0),
                    missing_dim=params["group"],
                    space=params.get("space", "scaled"),
                    marginal=params.get("marginal"),
                )
            )
            pos += params["width"]
        n_values = pos
        # Indicator dimensions follow all value dimensions.
        columns = [
            c if c.missing_dim is None else replace(c, missing_dim=n_values + c.missing_dim)
            for c in columns
        ]
        codes = table.codes
        return cls(
            columns=tuple(columns),
            missing_groups=tuple(tuple(g) for g in groups),
            static_dim=n_values + len(groups),
            vocabulary=() if codes is None else tuple(codes.vocabulary),
            code_system="" if codes is None else codes.system,
            code_granularity="" if codes is None else codes.granularity,
            label_name=table.label_name,
            label_classes=table.label_classes,
        )

    # --- encode / decode ---------------------------------------------------------------------
    def check_compatible(self, table: EHRTable) -> None:
        want = [c.name for c in self.columns]
        have = [f.name for f in table.static_features] if table.static is not None else []
        if want != have:
            missing = [c for c in want if c not in have][:5]
            extra = [c for c in have if c not in want][:5]
            raise CohortError(
                "the cohort's columns do not match the model's "
                f"(missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})"
            )
        vocab = () if table.codes is None else tuple(table.codes.vocabulary)
        if vocab != self.vocabulary:
            raise CohortError(
                f"the cohort's code vocabulary ({len(vocab)} codes) differs from the model's ({len(self.vocabulary)})"
            )

    def encode(self, table: EHRTable, rng: np.random.Generator | None = None) -> np.ndarray:
        """``rng`` spreads tied values over their CDF interval in the CDF spaces (for training);
        without it they sit mid-way, so encoding is deterministic."""
        self.check_compatible(table)
        n = table.n_records
        out = np.zeros((n, self.dim), dtype=np.float32)
        for c in self.columns:
            col = table.static[c.name]
            missing = col.isna().to_numpy()
            if c.missing_dim is not None:
                out[missing, c.missing_dim] = 1.0
            if c.kind == "categorical":
                index = {v: i for i, v in enumerate(c.categories)}
                codes = col.astype(object).map(
                    lambda v, index=index: index.get(str(v), -1) if pd.notna(v) else -1
                )
                codes = codes.to_numpy(dtype=np.int64)
                unknown = (codes < 0) & ~missing
                if unknown.any():
                    raise CohortError(
                        f"column '{c.name}' has level {col[unknown].iloc[0]!r} unknown to the model"
                    )
                rows = np.flatnonzero(codes >= 0)
                out[rows, c.start + codes[rows]] = 1.0
            else:
                v = col.to_numpy(dtype=float)
                fill = c.fill
                if c.kind == "numeric" and c.space in CDF_SPACES:
                    v = c.marginal.to_space(np.where(missing, c.marginal.lo, v), c.space, rng)
                    if rng is not None:
                        # Noise in the value slot of a missing entry: no signal, and no spike at
                        # the fill value for the model to copy into observed entries.
                        fill = c.marginal.level_to_space(rng.random(n), c.space)
                elif c.kind == "numeric":
                    t = np.log1p(np.maximum(v, 0)) if c.log else v
                    v = (t - c.lo) / (c.hi - c.lo) if c.hi > c.lo else np.zeros_like(t)
                    v = np.clip(v, 0.0, 1.0)
                out[:, c.start] = np.where(missing, fill, v)
        if self.vocabulary:
            out[:, self.static_dim :] = table.codes.dense()
        return out

    def decode(
        self, x: np.ndarray, record_ids: np.ndarray, labels: np.ndarray | None = None
    ) -> EHRTable:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise CohortError(f"expected vectors of width {self.dim}, got {x.shape}")
        static = None
        specs = []
        if self.columns:
            data: dict[str, object] = {}
            for c in self.columns:
                missing = (
                    x[:, c.missing_dim] > 0.5
                    if c.missing_dim is not None
                    else np.zeros(len(x), bool)
                )
                if c.kind == "categorical":
                    pick = x[:, c.start : c.start + c.width].argmax(axis=1)
                    codes = np.where(missing, -1, pick)
                    data[c.name] = pd.Categorical.from_codes(codes, categories=list(c.categories))
                elif c.kind == "binary":
                    data[c.name] = np.where(missing, np.nan, (x[:, c.start] > 0.5).astype(float))
                elif c.space in CDF_SPACES:
                    values = c.marginal.from_space(x[:, c.start], c.space)
                    data[c.name] = np.where(missing, np.nan, values)
                else:
                    t = np.clip(x[:, c.start].astype(np.float64), 0.0, 1.0) * (c.hi - c.lo) + c.lo
                    v = np.expm1(t) if c.log else t
                    if c.marginal is not None:
                        v = c.marginal.snap(v)
                    data[c.name] = np.where(missing, np.nan, v)
                specs.append(FeatureSpec(c.name, c.kind, c.unit, c.categories))  # type: ignore[arg-type]
            static = pd.DataFrame(data)
        codes = None
        if self.vocabulary:
            codes = codes_from_binary(
                x[:, self.static_dim :] > 0.5,
                self.vocabulary,
                self.code_system,
                self.code_granularity,
            )
        return EHRTable(
            record_ids=record_ids,
            static=static,
            static_features=tuple(specs),
            codes=codes,
            labels=labels,
            label_name=self.label_name,
            label_classes=self.label_classes,
        )

    def snap(self, column: str, values: np.ndarray) -> np.ndarray:
        """``values`` of a numeric column onto its stored support or precision, within its
        range (unchanged for a column without a marginal)."""
        codec = next((c for c in self.columns if c.name == column), None)
        if codec is None or codec.marginal is None:
            return np.asarray(values, dtype=np.float64)
        return codec.marginal.snap(values)

    def with_marginals(self, fitted: VectorEncoding) -> VectorEncoding:
        """This encoding with the numeric columns' marginals of ``fitted``, an encoding fitted on
        the same training split (an older checkpoint gains support and precision this way)."""
        by_name = {c.name: c for c in fitted.columns}
        columns = []
        for c in self.columns:
            if c.kind == "numeric":
                new = by_name.get(c.name)
                if new is None or (new.lo, new.hi) != (c.lo, c.hi):
                    raise CheckpointError(
                        f"column '{c.name}': the range fitted now differs from the encoding's; "
                        "is this its training split?"
                    )
                c = replace(c, marginal=new.marginal)
            columns.append(c)
        return replace(self, columns=tuple(columns))

    # --- persistence (manifest JSON) -------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "columns": [
                {
                    **asdict(c),
                    "categories": list(c.categories),
                    "marginal": None if c.marginal is None else c.marginal.to_json(),
                }
                for c in self.columns
            ],
            "missing_groups": [list(g) for g in self.missing_groups],
            "static_dim": self.static_dim,
            "vocabulary": list(self.vocabulary),
            "code_system": self.code_system,
            "code_granularity": self.code_granularity,
            "label_name": self.label_name,
            "label_classes": list(self.label_classes),
        }

    @classmethod
    def from_json(cls, raw: dict) -> VectorEncoding:
        try:
            return cls(
                columns=tuple(
                    ColumnCodec(
                        **{
                            **c,
                            "categories": tuple(c["categories"]),
                            "marginal": None
                            if c.get("marginal") is None
                            else Marginal.from_json(c["marginal"]),
                        }
                    )
                    for c in raw["columns"]
                ),
                missing_groups=tuple(tuple(g) for g in raw["missing_groups"]),
                static_dim=int(raw["static_dim"]),
                vocabulary=tuple(raw["vocabulary"]),
                code_system=raw.get("code_system", ""),
                code_granularity=raw.get("code_granularity", ""),
                label_name=raw.get("label_name"),
                label_classes=tuple(raw.get("label_classes", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid feature encoding in manifest ({exc})") from None
