"""Validity (issue #28): known answers, the broken rules in words, the review row and the gate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.data.records import EHRTable, ehr_table
from core.data.visits import from_frames
from core.encoding.constraints import infer_constraints
from core.metrics.suite import Review, ReviewSettings, review
from core.metrics.validity import sequence_violations, validity, wilson_interval
from core.release.gate import GateThresholds, evaluate_gate
from tests.core.flexgen.toy import toy_cohort


@pytest.fixture(scope="module")
def split() -> tuple[EHRTable, EHRTable]:
    table = ehr_table(toy_cohort(300, missing_temporal=0.1))
    return table.subset(np.arange(200)), table.subset(np.arange(200, 300))


def swapped(table: EHRTable, k: int) -> EHRTable:
    """``table`` with HR's min and max swapped in ``k`` records where they differ."""
    frame = table.static.copy()
    rows = np.flatnonzero(frame["HR_min"] < frame["HR_max"])[:k]
    frame.loc[rows, ["HR_min", "HR_max"]] = frame.loc[rows, ["HR_max", "HR_min"]].to_numpy()
    return replace(table, static=frame)


def test_real_training_records_are_all_valid(split):
    train, _ = split
    res = validity(train, infer_constraints(train))
    assert res.value == 1.0 and res.ci[1] == 1.0 and res.ci[0] > 0.98
    assert res.details["invalid_records"] == 0 and res.details["violations"] == []
    assert res.per_feature.empty


def test_min_and_max_swapped_in_k_of_n_records_scores_one_minus_k_over_n(split):
    train, _ = split
    k = 12
    res = validity(swapped(train, k), infer_constraints(train))
    assert res.value == pytest.approx(1 - k / train.n_records)
    assert f"HR: min above max in {k} records" in res.details["violations"]
    top = res.per_feature.iloc[0]
    assert top["records"] == k and top["share"] == pytest.approx(k / train.n_records)
    assert res.ci[0] < res.value < res.ci[1]


def test_wilson_interval_known_answer():
    lo, hi = wilson_interval(100, 90)
    assert lo == pytest.approx(0.8256, abs=1e-4) and hi == pytest.approx(0.9448, abs=1e-4)


def test_the_review_reports_validity_and_the_gate_fails_on_one_invalid_record(split):
    train, holdout = split
    settings = ReviewSettings(bootstrap=20, mmd_max_records=200)
    bad = review("bad", train, holdout, swapped(train, 1), settings=settings)
    res = bad.get("validity")
    assert res.details["invalid_records"] == 1 and res.spec == "validity"
    check = next(c for c in evaluate_gate(bad).checks if c.name.startswith("Records breaking"))
    assert check.verdict == "fail" and check.value == pytest.approx(1 / train.n_records)
    # counted over the set itself: never inconclusive; passes only with no invalid record
    clean = Review("v", [validity(train, infer_constraints(train))], {}, "", 200, None)
    check = next(c for c in evaluate_gate(clean).checks if c.name.startswith("Records breaking"))
    assert check.verdict == "pass" and check.value == 0.0
    loose = GateThresholds(invalid_records=0.01)
    check = next(c for c in evaluate_gate(bad, loose).checks if c.name.startswith("Records"))
    assert check.passed


def test_a_value_beyond_the_training_range_is_reported_but_only_impossible_records_fail_the_gate(
    split,
):
    """Real unseen stays break a training range now and then (PhysioNet: 15 of 800); no real
    stay has min above max. The gate fails the second, the validity row reports both."""
    train, _ = split
    rules = infer_constraints(train)
    frame = train.static.copy()
    frame.loc[0, ["HR_first", "HR_last", "HR_min", "HR_max", "HR_mean"]] = 400.0  # beyond range
    beyond = validity(replace(train, static=frame), rules)
    assert beyond.value == pytest.approx(1 - 1 / train.n_records)
    assert any(v.startswith("HR: outside") for v in beyond.details["violations"])
    assert beyond.details["impossible_records"] == 0 and beyond.evidence.estimate == 0.0
    from core.report.review_report import validity_text

    # the page and the report say which kind broke, so the gate's pass does not read as a slip
    assert "1 break at least one: 0 a rule no real record can break" in validity_text(beyond)
    gate = evaluate_gate(Review("v", [beyond], {}, "", train.n_records, None))
    check = next(c for c in gate.checks if c.name.startswith("Records breaking"))
    assert check.verdict == "pass"
    crossed = validity(swapped(replace(train, static=frame), 1), rules)
    assert crossed.details["impossible_records"] == 1
    gate = evaluate_gate(Review("v", [crossed], {}, "", train.n_records, None))
    check = next(c for c in gate.checks if c.name.startswith("Records breaking"))
    assert check.verdict == "fail" and check.value == pytest.approx(1 / train.n_records)


def test_visit_sequences_obey_their_own_logic():
    visits = pd.DataFrame(
        {
            "key": ["a0", "a1", "b0", "b1", "c0"],
            "patient": ["a", "a", "b", "b", "c"],
            "order": [0, 1, 0, 1, 0],
            "gap_days": [0.0, 3.0, 0.0, -2.0, 0.0],
        }
    )
    events = pd.DataFrame(
        {
            "key": ["a0", "a1", "b0", "b1", "c0"],
            "modality": ["dx"] * 5,
            "code": ["I10", "E11", "I10", "I10", "Z99"],
        }
    )
    synth = from_frames(name="s", visits=visits, events=events, modalities=("dx",))
    train = from_frames(
        name="t",
        visits=visits.iloc[:2].assign(patient="t"),
        events=events.iloc[:2],
        modalities=("dx",),
    )
    broken = {label: mask for label, _, mask in sequence_violations(synth, train)}
    ids = list(synth.patient_ids)
    assert [ids[i] for i in np.flatnonzero(broken["Visits: negative gap between visits"])] == ["b"]
    unknown = broken["Visits: a code the training sequences never hold"]
    assert [ids[i] for i in np.flatnonzero(unknown)] == ["c"]
    assert not broken["Visits: first visit with a gap"].any()
    assert not any(m.any() for _, _, m in sequence_violations(train, train))
