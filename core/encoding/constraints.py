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
- ``missing_together``: columns whose missingness is the same in every training record (the
  summaries of one variable; also variables charted together, like DiasABP and SysABP), with at
  least ``MIN_SUPPORT`` records on either side.

A constraint set is JSON of column names and aggregates only. A model stored before constraints
existed decodes with :func:`structural_constraints`, the order and missingness rules its column
names alone imply. :func:`enforce` repairs a decoded table; :data:`REPAIRS` names the ways
crossed summaries can be repaired, measured in ``benchmarks/validity.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

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
            a, b = _summary_of(c[0]), _summary_of(c[1])
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
        return f"{name}: missing in part"

    def to_json(self) -> dict:
        out: dict = {"kind": self.kind, "columns": list(self.columns)}
        if self.kind == "range":
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
        if not columns or (kind in ("order", "equal") and len(columns) != 2):
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
def _summary_of(column: str) -> tuple[str, str] | None:
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
        parts = _summary_of(column)
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
def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
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
        values = {c: _values(frame, c) for c in cols}
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
        block = np.column_stack([_values(frame, c) for c in cols])
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
    for cols in _variable_columns(numeric).values():
        pooled = np.concatenate([_values(frame, c) for c in cols])
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
    variable with ``{var}_min`` and ``{var}_max``, min <= every summary <= max, and its summaries
    missing together."""
    out = []
    for group in summary_groups(columns).values():
        if "min" not in group or "max" not in group:
            continue
        lo, hi = group["min"], group["max"]
        inner = [group[s] for s in SUMMARIES if s in group and s not in ("min", "max")]
        out.append(Constraint("order", (lo, hi)))
        out += [Constraint("order", (lo, c)) for c in inner]
        out += [Constraint("order", (c, hi)) for c in inner]
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
    _check_columns(table, constraints)
    return [(k, _broken(table.static, k, table.n_records)) for k in constraints.constraints]


def _check_columns(table: EHRTable, constraints: ConstraintSet) -> None:
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
    block = np.column_stack([_values(frame, c) for c in k.columns])
    with np.errstate(invalid="ignore"):
        if k.kind == "order":
            return ~_leq(block[:, 0], block[:, 1])
        if k.kind == "equal":
            return ~_leq(block[:, 0], block[:, 1]) | ~_leq(block[:, 1], block[:, 0])
        if k.kind == "range":
            return ((block < k.lo) | (block > k.hi)).any(axis=1)
        if k.kind == "non_negative":
            return (block < 0).any(axis=1)
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


# --- enforcement ---------------------------------------------------------------------------------
REPAIRS = ("calibrated", "collapse", "swap_clip", "envelope", "sort")
DEFAULT_REPAIR = "calibrated"
"""How crossed summaries are put back in order, measured by ``python -m benchmarks.validity``
(EHRDiff PhysioNet, 3,200 records x 5 seeds, DPM-Solver++(2M) 16 steps, against the training
split; mean numeric KS and dimension-wise R^2 with 95% intervals over seeds, TSTR random forest
AUROC; real stays have min = max in 15.9% of variable-stays). As decoded without repair: 0%
valid, KS 0.0361 (0.0348-0.0375), R^2 0.99901 (0.99886-0.99916), TSTR 0.838, min = max 5.7%.

- ``calibrated`` (default): a variable whose min came out above its max, and the closest
  min/max pairs up to the training share of single measurements (``equal_share``), are ones the
  model saw as one measurement blurred by noise: all summaries take one of its recorded values
  (first, last, min or max, drawn at random so no column's marginal is pulled one way); the
  others have first, last and mean clipped into [min, max]. KS 0.0376 (0.0362-0.0389),
  R^2 0.99842 (0.99819-0.99865), TSTR 0.832, min = max 19.5%;
- ``collapse``: only crossed variables, onto the lower median of first, last, min and max.
  KS 0.0431, R^2 0.99834, TSTR 0.835, min = max 17.4%;
- ``swap_clip``: min and max swapped where crossed, then first, last and mean clipped inside.
  KS 0.0456, R^2 0.99782, TSTR 0.837, min = max 5.7%;
- ``envelope``: min becomes the smallest of the summaries and max the largest, the rest kept.
  KS 0.0813, R^2 0.98881, TSTR 0.838, min = max 2.9%;
- ``sort``: the summaries sorted, min and max taking the ends and first, last and mean the middle
  values in their own order. KS 0.0804, R^2 0.98851, TSTR 0.834, min = max 2.9%.
"""


def _median_low(values: np.ndarray) -> np.ndarray:
    """Row-wise lower median of the non-missing values (one of them, never a new value)."""
    ordered = np.sort(values, axis=1)  # NaN last
    count = (~np.isnan(values)).sum(axis=1)
    index = np.maximum((count - 1) // 2, 0)
    return np.take_along_axis(ordered, index[:, None], axis=1)[:, 0]


def _repair_group(
    block: np.ndarray,
    roles: list[str],
    repair: str,
    equal_share: float | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """``block`` [n, k]: one variable's summaries (role names in ``roles``, "min" and "max" among
    them), complete rows only. Returns the repaired block."""
    out = block.copy()
    lo_j, hi_j = roles.index("min"), roles.index("max")
    inner = [j for j in range(len(roles)) if j not in (lo_j, hi_j)]
    lo, hi = out[:, lo_j], out[:, hi_j]
    crossed = lo > hi
    if repair == "calibrated":
        single = crossed.copy()
        if equal_share:  # the closest pairs, up to the training share of single measurements
            closest = np.argsort(hi - lo, kind="stable")[: int(round(equal_share * len(out)))]
            single[closest] = True
        measured = np.flatnonzero(np.asarray(roles) != "mean")
        pick = block[np.arange(len(out)), measured[rng.integers(0, len(measured), len(out))]]
        out[single] = pick[single, None]
    if repair == "envelope":
        out[:, lo_j], out[:, hi_j] = block.min(axis=1), block.max(axis=1)
        return out
    if repair == "sort":
        ordered = np.sort(block, axis=1)
        out[:, lo_j], out[:, hi_j] = ordered[:, 0], ordered[:, -1]
        if inner:  # first, last, mean keep their order among themselves
            ranks = np.argsort(np.argsort(block[:, inner], axis=1, kind="stable"), axis=1)
            middle = ordered[:, 1:-1]
            out[:, inner] = np.take_along_axis(middle, ranks, axis=1)
        return out
    if repair == "swap_clip":
        out[:, lo_j], out[:, hi_j] = np.minimum(lo, hi), np.maximum(lo, hi)
    elif repair == "calibrated":
        pass
    elif repair == "collapse":
        measured = [j for j, r in enumerate(roles) if r != "mean"]
        value = _median_low(block[:, measured])
        out[crossed] = value[crossed, None]
    else:
        raise ConfigError(f"unknown repair '{repair}'; expected one of {REPAIRS}")
    if inner:
        out[:, inner] = np.clip(out[:, inner], out[:, [lo_j]], out[:, [hi_j]])
    return out


Snap = Callable[[str, np.ndarray], np.ndarray]


def _repair_snapped(
    block: np.ndarray,
    roles: list[str],
    cols: list[str],
    repair: str,
    equal_share: float | None,
    rng: np.random.Generator,
    snap: Snap | None,
) -> np.ndarray:
    """The repair, with each column's changed values put back on its support or precision
    (``snap``), and min and max widened where that rounding crossed them."""
    out = _repair_group(block, roles, repair, equal_share, rng)
    if snap is None:
        return out
    lo_j, hi_j = roles.index("min"), roles.index("max")
    for _ in range(3):
        changed = (out != block).any(axis=1)
        out[changed] = np.column_stack([snap(c, out[changed, j]) for j, c in enumerate(cols)])
        broken = (out[:, [lo_j]] > out).any(axis=1) | (out > out[:, [hi_j]]).any(axis=1)
        if not broken.any():
            break
        # Rounding crossed them (a last of 67.1 clipped to min, rounded to 67): min and max
        # widen by that rounding step over the measured values; the mean (finer) is clipped.
        measured = [j for j, r in enumerate(roles) if r != "mean"]
        rows = np.flatnonzero(broken)
        out[rows, lo_j] = out[np.ix_(rows, measured)].min(axis=1)
        out[rows, hi_j] = out[np.ix_(rows, measured)].max(axis=1)
        if "mean" in roles:
            m = roles.index("mean")
            out[rows, m] = np.clip(out[rows, m], out[rows, lo_j], out[rows, hi_j])
    return out


def enforce(
    table: EHRTable,
    constraints: ConstraintSet,
    repair: str = DEFAULT_REPAIR,
    seed: int = 0,
    snap: Snap | None = None,
) -> EHRTable:
    """``table`` with every record made to satisfy ``constraints``, changing only what breaks
    them: values beyond a range are clipped onto it, crossed summaries repaired by ``repair``,
    a group missing in part made missing, an unknown level made missing, a one-hot group with
    several levels set keeps the first. ``snap(column, values)`` puts repaired values back on
    the column's support or precision (a decoder's marginals). A record the repair leaves broken
    (a dataset whose rules are not the usual min/max ones) gets one value for all of its
    variable's summaries."""
    if repair not in REPAIRS:
        raise ConfigError(f"unknown repair '{repair}'; expected one of {REPAIRS}")
    if table.static is None or not len(constraints):
        return table
    _check_columns(table, constraints)
    frame = table.static.copy()
    changed = 0
    for k in constraints.of_kind("levels"):
        col = frame[k.columns[0]]
        bad = col.notna() & ~col.astype(object).astype(str).isin(k.levels)
        if bad.any():
            frame[k.columns[0]] = col.where(~bad)
    for k in constraints.of_kind("binary"):
        v = _values(frame, k.columns[0])
        frame[k.columns[0]] = np.where(np.isnan(v), np.nan, np.clip(np.round(v), 0, 1))
    for k in constraints.of_kind("missing_together"):
        missing = frame[list(k.columns)].isna().to_numpy()
        part = missing.any(axis=1) & ~missing.all(axis=1)
        if part.any():
            changed += int(part.sum())
            frame.loc[part, list(k.columns)] = np.nan
    for k in constraints.of_kind("range", "non_negative"):
        lo = 0.0 if k.kind == "non_negative" else k.lo
        hi = np.inf if k.kind == "non_negative" else k.hi
        for c in k.columns:
            v = _values(frame, c)
            clipped = np.clip(v, lo, hi)
            moved = (clipped != v) & ~np.isnan(v)
            if snap is not None and moved.any():  # onto the grid, if that stays inside
                snapped = snap(c, clipped[moved])
                inside = (snapped >= lo) & (snapped <= hi)
                clipped[moved] = np.where(inside, snapped, clipped[moved])
            frame[c] = clipped
    for k in constraints.of_kind("one_hot"):
        block = np.nan_to_num(np.column_stack([_values(frame, c) for c in k.columns]))
        several = block.sum(axis=1) > 1
        if several.any():
            first = block.argmax(axis=1)
            for j, c in enumerate(k.columns):
                frame.loc[several, c] = (first[several] == j).astype(float)
    ordered = {c for k in constraints.of_kind("order", "equal") for c in k.columns}
    share = {k.columns: k.equal_share for k in constraints.of_kind("order")}
    rng = np.random.default_rng(seed)  # the calibrated repair's draws: same table, same records
    # In the table's column order: the draws of the calibrated repair go to the same variables
    # in every process (a set's order changes with the interpreter's hash seed).
    for group in summary_groups([c for c in frame.columns if c in ordered]).values():
        if "min" not in group or "max" not in group:
            continue
        roles = [s for s in SUMMARIES if s in group]
        cols = [group[r] for r in roles]
        block = np.column_stack([_values(frame, c) for c in cols])
        rows = ~np.isnan(block).any(axis=1)
        if rows.any():
            frame.loc[rows, cols] = _repair_snapped(
                block[rows], roles, cols, repair, share.get((group["min"], group["max"])), rng, snap
            )
    # Whatever the usual repair left broken (an equality, an order between first and last):
    # one value for all of the variable's summaries, which satisfies any order among them.
    fixed = replace(table, static=frame)
    for k, mask in violations(
        fixed, ConstraintSet(tuple(constraints.of_kind("order", "equal")), "")
    ):
        if mask.any():
            cols = _all_summaries(frame, k.columns[0]) or list(k.columns)
            value = _median_low(np.column_stack([_values(frame, c) for c in cols])[mask])
            frame.loc[mask, cols] = np.repeat(value[:, None], len(cols), axis=1)
            changed += int(mask.sum())
    if changed:
        log.info("constraints: %d record-level repairs beyond clipping", changed)
    return replace(table, static=frame)


def _all_summaries(frame: pd.DataFrame, column: str) -> list[str]:
    """Every summary column of ``column``'s variable in ``frame`` (none for other columns)."""
    parts = _summary_of(column)
    if not parts:
        return []
    return [f"{parts[0]}_{s}" for s in SUMMARIES if f"{parts[0]}_{s}" in frame.columns]
