"""Constraints of the training records: inference, JSON, checking and repair (issue #28)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.data.cohort import FeatureSpec
from core.data.records import EHRTable, ehr_table, summarise_temporal
from core.encoding import constraints as C
from core.encoding import repair as R
from core.errors import CheckpointError, ConfigError
from tests.core.flexgen.toy import toy_cohort


@pytest.fixture(scope="module")
def real() -> EHRTable:
    return ehr_table(toy_cohort(240, missing_static=0.1, missing_temporal=0.1))


def crossed(table: EHRTable, rows: list[int], var: str = "HR") -> EHRTable:
    """``table`` with min and max of ``var`` swapped in ``rows`` (where they differ)."""
    frame = table.static.copy()
    lo, hi = f"{var}_min", f"{var}_max"
    frame.loc[rows, [lo, hi]] = frame.loc[rows, [hi, lo]].to_numpy()
    return replace(table, static=frame)


def test_the_rules_of_summaries_are_found_and_every_training_record_obeys_them(real):
    cs = C.infer_constraints(real)
    labels = {k.label for k in cs.constraints}
    for var in ("HR", "Temp"):
        assert f"{var}: min above max" in labels
        assert {f"{var}: min above {s}" for s in ("first", "last", "mean")} <= labels
        assert {f"{var}: {s} above max" for s in ("first", "last", "mean")} <= labels
        assert f"{var}: missing in part" in labels
    # the toy's lactate rises every hour: its first value is its minimum in every stay
    assert "Lactate: first differs from min" in labels and "Lactate: min above max" in labels
    # first vs last is no rule: real stays go either way
    assert not any(f"{v}: first above last" in labels for v in ("HR", "Temp"))
    assert not any(f"{v}: last above first" in labels for v in ("HR", "Temp"))
    assert "Unit: not one of its 3 levels" in labels and "Male: not 0 or 1" in labels
    assert "HR: negative" in labels
    assert C.valid_records(real, cs).all()


def test_bounds_enclose_every_value_and_none_is_a_patients_value(real):
    cs = C.infer_constraints(real)
    frame = real.static
    for k in cs.of_kind("range"):
        values = frame[list(k.columns)].to_numpy(float)
        values = values[~np.isnan(values)]
        assert k.lo < values.min() or k.lo == 0 == values.min()
        assert k.hi > values.max()
        assert not np.isin([k.lo, k.hi], values).any() or k.lo == 0


def test_the_set_is_json_of_names_and_aggregates_only(real):
    cs = C.infer_constraints(real)
    raw = json.loads(json.dumps(cs.to_json()))
    assert C.ConstraintSet.from_json(raw) == cs
    text = json.dumps(raw)
    assert not any(rid in text for rid in real.record_ids)
    with pytest.raises(CheckpointError, match="invalid constraint set"):
        C.ConstraintSet.from_json({**raw, "constraints": [{"kind": "order", "columns": ["a"]}]})


def test_a_rule_needs_enough_records_to_show_it():
    frame = pd.DataFrame({"X_first": [1.0, 2.0, 3.0], "X_last": [2.0, 3.0, 4.0]})
    specs = tuple(FeatureSpec(c, "numeric") for c in frame.columns)
    table = EHRTable(np.array(["a", "b", "c"], dtype=object), frame, specs, None)
    assert not C.infer_constraints(table).of_kind("order")  # three stays are no rule
    assert C.infer_constraints(table, min_support=3).of_kind("order")


def test_a_variable_measured_once_in_every_stay_has_all_summaries_equal():
    n = 40
    v = np.random.default_rng(0).normal(5, 1, n)
    frame = pd.DataFrame({f"X_{s}": v for s in ("first", "last", "min", "max", "mean")})
    specs = tuple(FeatureSpec(c, "numeric") for c in frame.columns)
    ids = np.asarray([f"r{i}" for i in range(n)], dtype=object)
    cs = C.infer_constraints(EHRTable(ids, frame, specs, None))
    assert len(cs.of_kind("equal")) == 10 and not cs.of_kind("order")
    broken = frame.copy()
    broken.loc[3, "X_last"] += 1.0
    table = EHRTable(ids, broken, specs, None)
    assert (~C.valid_records(table, cs)).sum() == 1
    fixed = R.enforce(table, cs)
    assert C.valid_records(fixed, cs).all()
    pd.testing.assert_frame_equal(fixed.static.drop(index=3), frame.drop(index=3))


def test_one_hot_columns_allow_one_level_at_most():
    n = 30
    level = np.arange(n) % 3
    frame = pd.DataFrame({f"Unit_{j}": (level == j).astype(float) for j in range(3)})
    specs = tuple(FeatureSpec(c, "binary") for c in frame.columns)
    ids = np.asarray([f"r{i}" for i in range(n)], dtype=object)
    cs = C.infer_constraints(EHRTable(ids, frame, specs, None))
    (one_hot,) = cs.of_kind("one_hot")
    assert one_hot.exactly and one_hot.label == "Unit: not exactly one level set"
    two = frame.copy()
    two.loc[5, "Unit_0"] = 1.0  # record 5 is Unit_2
    table = EHRTable(ids, two, specs, None)
    assert (~C.valid_records(table, cs)).sum() == 1
    assert C.valid_records(R.enforce(table, cs), cs).all()


def test_structural_rules_come_from_the_column_names_alone(real):
    cs = C.structural_constraints(real.columns)
    assert cs.source == "structural (column names)"
    assert {k.label for k in cs.of_kind("order")} >= {"HR: min above max", "Temp: mean above max"}
    assert len(cs.of_kind("order")) == 3 * 7 and len(cs.of_kind("missing_together")) == 3
    assert len(cs.of_kind("mean_inside")) == 3
    assert not cs.of_kind("range")
    assert C.constraints_for(None, real.columns) == cs
    assert C.constraints_for(C.infer_constraints(real).to_json(), real.columns) != cs


def test_a_set_for_other_columns_is_refused(real):
    cs = C.structural_constraints(["BP_min", "BP_max"])
    with pytest.raises(ConfigError, match="BP_max"):
        C.valid_records(real, cs)


@pytest.mark.parametrize("repair", R.REPAIRS)
def test_every_repair_makes_every_record_valid_and_leaves_valid_ones_alone(real, repair):
    cs = C.infer_constraints(real)
    frame = real.static.copy()
    rng = np.random.default_rng(1)
    summaries = [c for c in frame.columns if C.summary_of(c)]
    noisy = frame[summaries] * rng.normal(1.0, 0.08, (len(frame), len(summaries)))
    frame[summaries] = noisy
    aged = int(np.flatnonzero(frame["Age"].notna())[0])
    frame.loc[aged, "Age"] = -5.0  # below the range and negative
    broken = replace(real, static=frame)
    bad = ~C.valid_records(broken, cs)
    assert bad.mean() > 0.5
    fixed = R.enforce(broken, cs, repair)
    assert C.valid_records(fixed, cs).all()
    pd.testing.assert_frame_equal(fixed.static[~bad], broken.static[~bad])
    # a value beyond the range is put on its bound
    assert fixed.static.loc[aged, "Age"] == next(
        k.lo for k in cs.of_kind("range") if "Age" in k.columns
    )
    assert R.enforce(real, cs, repair).static.equals(real.static)
    with pytest.raises(ConfigError, match="unknown repair"):
        R.enforce(broken, cs, "magic")


def spread_rows(table: EHRTable, k: int, var: str = "HR") -> list[int]:
    """The first ``k`` records whose ``var`` has min below max."""
    return np.flatnonzero(table.static[f"{var}_min"] < table.static[f"{var}_max"])[:k].tolist()


def test_collapse_gives_a_crossed_variable_one_recorded_value(real):
    cs = C.infer_constraints(real)
    rows = spread_rows(real, 3)
    table = crossed(real, rows)
    fixed = R.enforce(table, cs, "collapse").static
    hr = [f"HR_{s}" for s in ("first", "last", "min", "max", "mean")]
    for row in rows:
        values = fixed.loc[row, hr].to_numpy(float)
        assert np.all(values == values[0])
        assert values[0] in table.static.loc[row, hr].to_numpy(float)


def test_a_group_missing_in_part_is_made_missing(real):
    cs = C.infer_constraints(real)
    frame = real.static.copy()
    row = int(np.flatnonzero(frame["HR_min"].notna())[0])
    frame.loc[row, "HR_mean"] = np.nan
    table = replace(real, static=frame)
    assert (~C.valid_records(table, cs)).sum() == 1
    fixed = R.enforce(table, cs).static
    assert fixed.loc[row, [c for c in frame.columns if c.startswith("HR_")]].isna().all()


def test_float32_series_give_a_mean_inside_min_and_max():
    """Summed in float32, three FiO2 readings of 0.4 had a mean of 0.40000004 above their max."""
    cohort = toy_cohort(20)
    values = cohort.temporal.values.copy()
    values[:, :3, 0] = np.float32(0.4)
    mask = cohort.temporal.mask.copy()
    mask[:, :, 0] = False
    mask[:, :3, 0] = True
    values[:, 3:, 0] = np.nan
    temporal = replace(cohort.temporal, values=values, mask=mask)
    frame, _ = summarise_temporal(replace(cohort, temporal=temporal))
    assert (frame["HR_mean"] <= frame["HR_max"]).all() and (
        frame["HR_mean"] >= frame["HR_min"]
    ).all()
    assert (frame["HR_mean"] == frame["HR_max"]).all()


def test_repaired_values_go_back_on_the_columns_grid(real):
    """With a decoder's snapping (here: whole numbers), a repaired value is on the grid and the
    record still valid (a mean stays off the grid where no grid value lies strictly between
    min and max); the same table is repaired the same way every time."""
    cs = C.infer_constraints(real)
    frame = real.static.copy()
    summaries = [c for c in frame.columns if c.startswith("HR_")]
    frame[summaries] = np.round(frame[summaries].to_numpy() * 1.0)
    frame.loc[spread_rows(real, 20), "HR_last"] += 0.5  # off the grid and maybe out of order
    table = crossed(replace(real, static=frame), spread_rows(real, 30))
    fixed = R.enforce(table, cs, snap=lambda _c, v: np.round(v))
    assert C.valid_records(fixed, cs).all()
    after, before = fixed.static[summaries].to_numpy(), table.static[summaries].to_numpy()
    repaired = (after != before) & ~np.isnan(after)
    lo, hi = fixed.static["HR_min"].to_numpy(), fixed.static["HR_max"].to_numpy()
    gridless_mean = np.zeros_like(repaired)
    gridless_mean[:, summaries.index("HR_mean")] = (hi - lo <= 1) & (lo < hi)
    values = after[repaired & ~gridless_mean]
    assert repaired.any() and (values == np.round(values)).all()
    again = R.enforce(table, cs, snap=lambda _c, v: np.round(v))
    pd.testing.assert_frame_equal(again.static, fixed.static)


def _stays(n: int, seed: int = 0) -> pd.DataFrame:
    """X summarised over 2-6 hourly values per stay, like core.data.records does."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        v = np.round(rng.normal(80, 10, rng.integers(2, 7)))
        rows.append([v[0], v[-1], v.min(), v.max(), v.mean()])
    return pd.DataFrame(rows, columns=[f"X_{s}" for s in ("first", "last", "min", "max", "mean")])


def _table(frame: pd.DataFrame) -> EHRTable:
    specs = tuple(FeatureSpec(c, "numeric") for c in frame.columns)
    return EHRTable(np.asarray([f"r{i}" for i in range(len(frame))], object), frame, specs, None)


def test_a_mean_lies_strictly_between_a_min_and_max_that_differ():
    frame = _stays(200)
    cs = C.infer_constraints(_table(frame))
    (rule,) = cs.of_kind("mean_inside")
    assert rule.columns == ("X_min", "X_mean", "X_max")
    assert rule.label == "X: mean at its min or max while they differ"
    assert 0 < rule.lo < 0.5 < rule.hi < 1  # the training's 5th and 95th percentile places
    assert C.valid_records(_table(frame), cs).all()
    # a mean on its min while the max is above: not a stay (the max was measured too)
    broken = frame.copy()
    spread = np.flatnonzero(frame["X_min"] < frame["X_max"])[:3]
    broken.loc[spread[0], "X_mean"] = broken.loc[spread[0], "X_min"]
    broken.loc[spread[1], "X_mean"] = broken.loc[spread[1], "X_max"]
    assert set(np.flatnonzero(~C.valid_records(_table(broken), cs))) == set(spread[:2])
    # a stay measured once has mean = min = max: no violation
    single = frame.copy()
    single.loc[spread[2], ["X_first", "X_last", "X_min", "X_max", "X_mean"]] = 70.0
    assert C.valid_records(_table(single), cs).all()


def test_no_mean_rule_when_a_training_stay_breaks_it():
    frame = _stays(200)
    row = np.flatnonzero(frame["X_min"] < frame["X_max"])[0]
    frame.loc[row, "X_mean"] = frame.loc[row, "X_min"]
    assert not C.infer_constraints(_table(frame)).of_kind("mean_inside")


@pytest.mark.parametrize("repair", R.REPAIRS)
def test_a_misplaced_mean_is_drawn_into_the_training_tail_on_its_side(repair):
    frame = _stays(400, seed=1)
    cs = C.infer_constraints(_table(frame))
    (rule,) = cs.of_kind("mean_inside")
    spread = np.flatnonzero(frame["X_min"] < frame["X_max"])
    low, high = spread[:50], spread[50:100]
    broken = frame.copy()
    broken.loc[low, "X_mean"] = broken.loc[low, "X_min"] - 3.0  # below min: clipped onto it
    broken.loc[high, "X_mean"] = broken.loc[high, "X_max"]
    fixed = R.enforce(_table(broken), cs, repair).static
    assert C.valid_records(_table(fixed), cs).all()
    place = (fixed["X_mean"] - fixed["X_min"]) / (fixed["X_max"] - fixed["X_min"])
    if repair in ("calibrated", "collapse", "swap_clip"):  # these clip the mean onto its bound
        assert ((place[low] > 0) & (place[low] <= rule.lo)).all()
        assert ((place[high] < 1) & (place[high] >= rule.hi)).all()
    untouched = np.setdiff1d(np.arange(len(frame)), np.r_[low, high])
    pd.testing.assert_frame_equal(fixed.loc[untouched], frame.loc[untouched])


def test_structural_sets_hold_the_mean_rule_with_default_places(real):
    cs = C.structural_constraints(real.columns)
    rules = cs.of_kind("mean_inside")
    assert len(rules) == 3 and all(k.lo is None for k in rules)
    frame = real.static.copy()
    row = np.flatnonzero((frame["HR_min"] < frame["HR_max"]).to_numpy())[0]
    frame.loc[row, "HR_mean"] = frame.loc[row, "HR_max"]
    fixed = R.enforce(replace(real, static=frame), cs)
    assert C.valid_records(fixed, cs).all()
    assert fixed.static.loc[row, "HR_mean"] < fixed.static.loc[row, "HR_max"]
