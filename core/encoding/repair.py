"""Repairing decoded records so they obey a model's :class:`~core.encoding.constraints.ConstraintSet`:
values clipped onto ranges, crossed summaries put back in order, groups missing in part made
missing. The ways crossed summaries can be repaired are measured in ``benchmarks/validity.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from core.data.records import SUMMARIES, EHRTable
from core.encoding.constraints import (
    Constraint,
    ConstraintSet,
    check_columns,
    column_values,
    misplaced_mean,
    summary_groups,
    summary_of,
    violations,
)
from core.errors import ConfigError

log = logging.getLogger(__name__)

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
    check_columns(table, constraints)
    frame = table.static.copy()
    changed = 0
    for k in constraints.of_kind("levels"):
        col = frame[k.columns[0]]
        bad = col.notna() & ~col.astype(object).astype(str).isin(k.levels)
        if bad.any():
            frame[k.columns[0]] = col.where(~bad)
    for k in constraints.of_kind("binary"):
        v = column_values(frame, k.columns[0])
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
            v = column_values(frame, c)
            clipped = np.clip(v, lo, hi)
            moved = (clipped != v) & ~np.isnan(v)
            if snap is not None and moved.any():  # onto the grid, if that stays inside
                snapped = snap(c, clipped[moved])
                inside = (snapped >= lo) & (snapped <= hi)
                clipped[moved] = np.where(inside, snapped, clipped[moved])
            frame[c] = clipped
    for k in constraints.of_kind("one_hot"):
        block = np.nan_to_num(np.column_stack([column_values(frame, c) for c in k.columns]))
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
        block = np.column_stack([column_values(frame, c) for c in cols])
        rows = ~np.isnan(block).any(axis=1)
        if rows.any():
            frame.loc[rows, cols] = _repair_snapped(
                block[rows], roles, cols, repair, share.get((group["min"], group["max"])), rng, snap
            )
    for k in constraints.of_kind("mean_inside"):
        _place_means(frame, k, rng, snap)
    # Whatever the usual repair left broken (an equality, an order between first and last):
    # one value for all of the variable's summaries, which satisfies any order among them.
    fixed = replace(table, static=frame)
    for k, mask in violations(
        fixed, ConstraintSet(tuple(constraints.of_kind("order", "equal", "mean_inside")), "")
    ):
        if mask.any():
            cols = _all_summaries(frame, k.columns[0]) or list(k.columns)
            value = _median_low(np.column_stack([column_values(frame, c) for c in cols])[mask])
            frame.loc[mask, cols] = np.repeat(value[:, None], len(cols), axis=1)
            changed += int(mask.sum())
    if changed:
        log.info("constraints: %d record-level repairs beyond clipping", changed)
    return replace(table, static=frame)


DEFAULT_MEAN_PLACE = (0.05, 0.95)  # for models whose set predates the training percentiles


def _place_means(
    frame: pd.DataFrame, k: Constraint, rng: np.random.Generator, snap: Snap | None
) -> None:
    """A mean on (or, unrepaired, beyond) its min or max while they differ is drawn into the
    training's outer 5% of places on that side: min + U(0, q05) x (max - min), or the mirror at
    max. Clipping put it on the bound, a place no real stay has."""
    cols = list(k.columns)
    block = np.column_stack([column_values(frame, c) for c in cols])
    rows = np.flatnonzero(misplaced_mean(block))
    if not rows.size:
        return
    lo, mean, hi = block[rows].T
    q05 = max(k.lo if k.lo is not None else DEFAULT_MEAN_PLACE[0], 1e-3)
    q95 = min(k.hi if k.hi is not None else DEFAULT_MEAN_PLACE[1], 1 - 1e-3)
    depth = rng.uniform(0.0, 1.0, rows.size)
    place = np.where(mean <= lo, (1 - depth) * q05, 1 - (1 - depth) * (1 - q95))
    placed = lo + place * (hi - lo)
    if snap is not None:  # onto the column's precision, where that stays strictly inside
        snapped = snap(cols[1], placed)
        placed = np.where((snapped > lo) & (snapped < hi), snapped, placed)
    frame.loc[frame.index[rows], cols[1]] = placed


def _all_summaries(frame: pd.DataFrame, column: str) -> list[str]:
    """Every summary column of ``column``'s variable in ``frame`` (none for other columns)."""
    parts = summary_of(column)
    if not parts:
        return []
    return [f"{parts[0]}_{s}" for s in SUMMARIES if f"{parts[0]}_{s}" in frame.columns]
