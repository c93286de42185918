"""The logic every real training record obeys: inferred from the training table, stored in a
model's manifest, enforced when the model decodes, and checked by the review's validity metric.

A stay summarised per variable (``{var}_{first,last,min,max,mean}``, :mod:`core.data.records`)
has min <= first, last, mean <= max; a variable measured once has all five equal; a lab is
missing with all its summaries. Generators that make each column on its own break these rules
(EHRDiff's records had min above max in 93.5% of stays, issue #28), and a clinician sees it in
the first row. :func:`infer_constraints` finds the rules that hold in EVERY training record:

- ``order``: ``a <= b`` between two summaries of one variable, kept when it holds in every record
  that has both and at least ``MIN_SUPPORT`` records have both (so a coincidence of a few stays
  is no rule); when both directions hold the pair is an ``equal`` constraint;
- ``range``: the variable's values (all its summaries pooled) within the training range rounded
  outward (:func:`core.encoding.vectors.enclosing_range`: no bound is a patient's value). The
  encoding's top-coded 0.5th..99.5th percentile range would be broken by 1% of real values;
- ``non_negative``: a variable never negative in training;
- ``binary`` (0/1), ``levels`` (a categorical column holds one of its levels) and ``one_hot``
  (0/1 columns ``{prefix}_{level}`` of which at most, or exactly, one is set in every record);
- ``mean_inside``: (min, mean, max) of one variable: when min < max, the mean lies strictly
  between them (some value was above the minimum), kept when it holds in every training stay;
  ``lo``/``hi`` hold the 5th and 95th percentiles of the mean's place between min (0) and max
  (1) in training, which the repair draws a misplaced mean's new place from;
- ``missing_together``: columns whose missingness is the same in every training record (the
  summaries of one variable; also variables charted together, like DiasABP and SysABP), with at
  least ``MIN_SUPPORT`` records on either side.

A constraint set is JSON of column names and aggregates only. A model stored before constraints
existed decodes with :func:`structural_constraints`, the rules its column names alone imply.
:func:`core.encoding.repair.enforce` repairs a decoded table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.records import SUMMARIES, EHRTable
from core.encoding.vectors import enclosing_range
from core.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

FORMAT = 1
MIN_SUPPORT = 10  # records that must show a rule before it is one (as for a stored support value)
# Comparisons allow float32 storage error: 0.4 read back as 0.40000001 is still 0.4.
RELATIVE_TOLERANCE = 1e-6
KINDS = (
    "order",
    "equal",
    "range",
    "non_negative",
    "binary",
    "levels",
    "one_hot",
    "missing_together",
    "mean_inside",
)
# Rules no real record can break (an order of summaries, a 0/1 flag, a level): a record breaking
# one is impossible. The others are patterns of the training records (their range, labs charted
# together), which 1-2% of real unseen records break too (PhysioNet: 15 of 800 stays beyond a
# training range): reported, not judged as impossible.
LOGIC_KINDS = frozenset(
    ("order", "equal", "mean_inside", "non_negative", "binary", "levels", "one_hot")
)


@dataclass(frozen=True)
class Constraint:
    kind: str  # one of KINDS
    columns: tuple[str, ...]  # order / equal: (a, b) meaning a <= b / a == b
    lo: float | None = None  # range
    hi: float | None = None
    levels: tuple[str, ...] = ()  # levels
    exactly: bool = False  # one_hot: exactly one set (else at most one)
    # order min <= max: the share of training stays (with both) where they are equal, a single
    # measurement; the default repair restores that share (an aggregate, rounded to 0.001)
    equal_share: float | None = None

    @property
    def label(self) -> str:
        """What a clinician reads: "Albumin: min above max"."""
        c = self.columns
        if self.kind in ("order", "equal"):
            a, b = summary_of(c[0]), summary_of(c[1])
            if a and b and a[0] == b[0]:
                verb = "above" if self.kind == "order" else "differs from"
                return f"{a[0]}: {a[1]} {verb} {b[1]}"
            return f"{c[0]} {'above' if self.kind == 'order' else 'differs from'} {c[1]}"
        name = _group_label(c)
        if self.kind == "range":
            return f"{name}: outside {_num(self.lo)} to {_num(self.hi)}"
        if self.kind == "non_negative":
            return f"{name}: negative"
        if self.kind == "binary":
            return f"{name}: not 0 or 1"
        if self.kind == "levels":
            return f"{name}: not one of its {len(self.levels)} levels"
        if self.kind == "one_hot":
            return f"{name}: {'not exactly one' if self.exactly else 'more than one'} level set"
        if self.kind == "mean_inside":
            return f"{name}: mean at its min or max while they differ"
        return f"{name}: missing in part"

    def to_json(self) -> dict:
        out: dict = {"kind": self.kind, "columns": list(self.columns)}
        if self.kind in ("range", "mean_inside"):
            out |= {"lo": self.lo, "hi": self.hi}
        if self.kind == "levels":
            out["levels"] = list(self.levels)
        if self.kind == "one_hot":
            out["exactly"] = self.exactly
        if self.equal_share is not None:
            out["equal_share"] = self.equal_share
        return out

    @classmethod
    def from_json(cls, raw: dict) -> Constraint:
        kind = raw["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown constraint kind {kind!r}")
        columns = tuple(str(c) for c in raw["columns"])
        if (
            not columns
            or (kind in ("order", "equal") and len(columns) != 2)
            or (kind == "mean_inside" and len(columns) != 3)
        ):
            raise ValueError(f"a '{kind}' constraint on columns {list(columns)}")
        return cls(
            kind,
            columns,
            None if raw.get("lo") is None else float(raw["lo"]),
            None if raw.get("hi") is None else float(raw["hi"]),
            tuple(str(v) for v in raw.get("levels", ())),
            bool(raw.get("exactly", False)),
            None if raw.get("equal_share") is None else float(raw["equal_share"]),
        )


@dataclass(frozen=True)
class ConstraintSet:
    constraints: tuple[Constraint, ...]
    source: str  # "inferred from 3,200 training records" or "structural (column names)"
    columns: tuple[str, ...] = field(default=())  # the table's columns it was made for

    def __len__(self) -> int:
        return len(self.constraints)

    def of_kind(self, *kinds: str) -> list[Constraint]:
        return [c for c in self.constraints if c.kind in kinds]

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "source": self.source,
            "columns": list(self.columns),
            "constraints": [c.to_json() for c in self.constraints],
        }

    @classmethod
    def from_json(cls, raw: dict) -> ConstraintSet:
        try:
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
            return cls(
                tuple(Constraint.from_json(c) for c in raw["constraints"]),
                str(raw["source"]),
                tuple(str(c) for c in raw.get("columns", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid constraint set in manifest ({exc})") from None


# --- names ---------------------------------------------------------------------------------------
def summary_of(column: str) -> tuple[str, str] | None:
    """``("Albumin", "min")`` for ``Albumin_min``; None when not a summary column."""
    var, sep, summary = column.rpartition("_")
    return (var, summary) if sep and var and summary in SUMMARIES else None


def _prefix(column: str) -> str:
    """The variable (or one-hot prefix) a column belongs to: ``ICUType`` of ``ICUType_2`` or
    ``ICUType=2``, ``HR`` of ``HR_min``; the column itself when it has no separator."""
    cut = max(column.rfind("_"), column.rfind("="))
    return column[:cut] if cut > 0 else column


def _group_label(columns: Sequence[str]) -> str:
    """ "Albumin" for Albumin's summaries, "BUN/Creatinine" for two variables' summaries."""
    if len(columns) == 1:
        return columns[0]
    names = list(dict.fromkeys(_prefix(c) for c in columns))
    return "/".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def summary_groups(columns: Iterable[str]) -> dict[str, dict[str, str]]:
    """Per variable with at least two summary columns: summary name -> column name."""
    groups: dict[str, dict[str, str]] = {}
    for column in columns:
        parts = summary_of(column)
        if parts:
            groups.setdefault(parts[0], {})[parts[1]] = column
    return {v: g for v, g in groups.items() if len(g) >= 2}


def _variable_columns(columns: Sequence[str]) -> dict[str, list[str]]:
    """Columns per variable: the summaries of one variable together, any other column alone."""
    groups = summary_groups(columns)
    member = {c: v for v, g in groups.items() for c in g.values()}
    out: dict[str, list[str]] = {}
    for column in columns:
        out.setdefault(member.get(column, column), []).append(column)
    return out


# --- inference -----------------------------------------------------------------------------------
def column_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)


def _leq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a <= b up to float32 storage error (True where either is missing)."""
    with np.errstate(invalid="ignore"):
        tol = RELATIVE_TOLERANCE * np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0)
        return ~(a > b + tol)


def _order_constraints(frame: pd.DataFrame, min_support: int) -> list[Constraint]:
    out = []
    for group in summary_groups(frame.columns).values():
        cols = [group[s] for s in SUMMARIES if s in group]
        values = {c: column_values(frame, c) for c in cols}
        holds = set()
        for a in cols:
            for b in cols:
                if a == b:
                    continue
                both = ~np.isnan(values[a]) & ~np.isnan(values[b])
                if both.sum() >= min_support and _leq(values[a][both], values[b][both]).all():
                    holds.add((a, b))
        for i, a in enumerate(cols):
            for b in cols[i + 1 :]:
                if (a, b) in holds and (b, a) in holds:
                    out.append(Constraint("equal", (a, b)))
                elif (a, b) in holds or (b, a) in holds:
                    pair = (a, b) if (a, b) in holds else (b, a)
                    share = None
                    if pair == (group.get("min"), group.get("max")):
                        lo, hi = values[pair[0]], values[pair[1]]
                        both = ~np.isnan(lo) & ~np.isnan(hi)
                        share = round(float(_leq(hi[both], lo[both]).mean()), 3)
                    out.append(Constraint("order", pair, equal_share=share))
    return out


def _mean_inside(frame: pd.DataFrame, min_support: int) -> list[Constraint]:
    out = []
    for group in summary_groups(frame.columns).values():
        if not {"min", "mean", "max"} <= group.keys():
            continue
        cols = (group["min"], group["mean"], group["max"])
        block = np.column_stack([column_values(frame, c) for c in cols])
        spread = _spread(block) & ~np.isnan(block).any(axis=1)
        if spread.sum() < min_support or misplaced_mean(block[spread]).any():
            continue
        lo, mean, hi = block[spread].T
        place = (mean - lo) / (hi - lo)
        q05, q95 = np.quantile(place, [0.05, 0.95])
        out.append(Constraint("mean_inside", cols, round(float(q05), 3), round(float(q95), 3)))
    return out


def _spread(block: np.ndarray) -> np.ndarray:
    """Rows of (min, mean, max) whose min is below max beyond float32 storage error."""
    with np.errstate(invalid="ignore"):
        return ~_leq(block[:, 2], block[:, 0])


def misplaced_mean(block: np.ndarray) -> np.ndarray:
    """Rows of (min, mean, max) with min < max whose mean is not strictly between them."""
    with np.errstate(invalid="ignore"):
        return _spread(block) & ((block[:, 1] <= block[:, 0]) | (block[:, 1] >= block[:, 2]))


def _missing_groups(frame: pd.DataFrame, min_support: int) -> list[Constraint]:
    missing = frame.isna().to_numpy()
    n = len(frame)
    groups: dict[bytes, list[str]] = {}
    for j, column in enumerate(frame.columns):
        k = int(missing[:, j].sum())
        if min_support <= k <= n - min_support:
            groups.setdefault(np.packbits(missing[:, j]).tobytes(), []).append(str(column))
    return [Constraint("missing_together", tuple(g)) for g in groups.values() if len(g) > 1]


def _one_hot_groups(frame: pd.DataFrame, binary: list[str], min_support: int) -> list[Constraint]:
    by_prefix: dict[str, list[str]] = {}
    for column in binary:
        if _prefix(column) != column:
            by_prefix.setdefault(_prefix(column), []).append(column)
    out = []
    for cols in by_prefix.values():
        if len(cols) < 2:
            continue
        block = np.column_stack([column_values(frame, c) for c in cols])
        complete = ~np.isnan(block).any(axis=1)
        if complete.sum() < min_support:
            continue
        total = block[complete].sum(axis=1)
        if (total <= 1).all():
            out.append(Constraint("one_hot", tuple(cols), exactly=bool((total == 1).all())))
    return out


def infer_constraints(table: EHRTable, min_support: int = MIN_SUPPORT) -> ConstraintSet:
    """The constraints that hold in every record of ``table`` (a model's training split)."""
    frame = table.static
    if frame is None or frame.empty:
        return ConstraintSet((), f"inferred from {table.n_records:,} training records")
    specs = {f.name: f for f in table.static_features}
    numeric = [c for c in frame.columns if specs[c].kind == "numeric"]
    binary = [c for c in frame.columns if specs[c].kind == "binary"]
    out: list[Constraint] = _order_constraints(frame[numeric], min_support)
    out += _mean_inside(frame[numeric], min_support)
    for cols in _variable_columns(numeric).values():
        pooled = np.concatenate([column_values(frame, c) for c in cols])
        pooled = pooled[~np.isnan(pooled)]
        if pooled.size < min_support:
            continue
        lo, hi = enclosing_range(pooled)
        out.append(Constraint("range", tuple(cols), lo, hi))
        if pooled.min() >= 0:
            out.append(Constraint("non_negative", tuple(cols)))
    out += [Constraint("binary", (c,)) for c in binary]
    out += [
        Constraint("levels", (f.name,), levels=tuple(f.categories))
        for f in table.static_features
        if f.kind == "categorical" and f.categories
    ]
    out += _one_hot_groups(frame, binary, min_support)
    out += _missing_groups(frame, min_support)
    return ConstraintSet(
        tuple(out),
        f"inferred from {table.n_records:,} training records",
        tuple(str(c) for c in frame.columns),
    )


def structural_constraints(columns: Sequence[str]) -> ConstraintSet:
    """What column names alone imply, for models stored before constraints were inferred: per
    variable with ``{var}_min`` and ``{var}_max``, min <= every summary <= max, a mean strictly
    inside when min < max, and its summaries missing together."""
    out = []
    for group in summary_groups(columns).values():
        if "min" not in group or "max" not in group:
            continue
        lo, hi = group["min"], group["max"]
        inner = [group[s] for s in SUMMARIES if s in group and s not in ("min", "max")]
        out.append(Constraint("order", (lo, hi)))
        out += [Constraint("order", (lo, c)) for c in inner]
        out += [Constraint("order", (c, hi)) for c in inner]
        if "mean" in group:
            out.append(Constraint("mean_inside", (lo, group["mean"], hi)))
        out.append(Constraint("missing_together", tuple(group[s] for s in SUMMARIES if s in group)))
    return ConstraintSet(tuple(out), "structural (column names)", tuple(columns))


def constraints_for(raw: dict | None, columns: Sequence[str]) -> ConstraintSet:
    """A manifest's stored set, or the structural one when the model predates constraints."""
    return ConstraintSet.from_json(raw) if raw else structural_constraints(columns)


# --- checking ------------------------------------------------------------------------------------
def violations(table: EHRTable, constraints: ConstraintSet) -> list[tuple[Constraint, np.ndarray]]:
    """Each constraint with the mask of the records that break it (a column the table lacks is
    a :class:`ConfigError` naming it: the set belongs to other data)."""
    if not len(constraints):
        return []
    check_columns(table, constraints)
    return [(k, _broken(table.static, k, table.n_records)) for k in constraints.constraints]


def check_columns(table: EHRTable, constraints: ConstraintSet) -> None:
    have = set() if table.static is None else set(table.static.columns)
    absent = sorted({c for k in constraints.constraints for c in k.columns} - have)
    if absent:
        raise ConfigError(
            f"the table lacks {len(absent)} column(s) the constraints name: "
            f"{', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}"
        )


def _broken(frame: pd.DataFrame, k: Constraint, n: int) -> np.ndarray:
    if k.kind == "levels":
        col = frame[k.columns[0]]
        text = col.astype(object).where(col.notna())
        return (text.notna() & ~text.astype(str).isin(k.levels)).to_numpy()
    if k.kind == "missing_together":
        missing = frame[list(k.columns)].isna().to_numpy()
        return missing.any(axis=1) & ~missing.all(axis=1)
    block = np.column_stack([column_values(frame, c) for c in k.columns])
    with np.errstate(invalid="ignore"):
        if k.kind == "order":
            return ~_leq(block[:, 0], block[:, 1])
        if k.kind == "equal":
            return ~_leq(block[:, 0], block[:, 1]) | ~_leq(block[:, 1], block[:, 0])
        if k.kind == "range":
            return ((block < k.lo) | (block > k.hi)).any(axis=1)
        if k.kind == "non_negative":
            return (block < 0).any(axis=1)
        if k.kind == "mean_inside":
            return misplaced_mean(block)
        if k.kind == "binary":
            return (~np.isnan(block) & (block != 0) & (block != 1)).any(axis=1)
        if k.kind == "one_hot":
            total = np.nansum(block, axis=1)
            complete = ~np.isnan(block).any(axis=1)
            return (total > 1) | (complete & (total != 1) if k.exactly else False)
    return np.zeros(n, bool)


def valid_records(table: EHRTable, constraints: ConstraintSet) -> np.ndarray:
    """True for each record that satisfies every constraint."""
    bad = np.zeros(table.n_records, bool)
    for _, mask in violations(table, constraints):
        bad |= mask
    return ~bad
