"""Value labels and physiological plausibility of PhysioNet 2012 variables (issue 31)."""

from __future__ import annotations

import math

import pandas as pd

from core.data.clinical import (
    PLAUSIBLE,
    binary_summary,
    implausible_values,
    value_label,
    variable_of,
    with_value_labels,
)
from core.data.formats import NamedInput, load_cohort
from core.data.physionet2012 import TIME_SERIES, load_physionet2012
from core.data.summary import summarize
from tests.conftest import make_tar_gz, record_text


def test_coded_values_read_as_the_challenge_codes_them():
    assert value_label("Gender", 1) == "male" and value_label("Gender", "0") == "female"
    assert value_label("Gender", 1.0) == "male" and value_label("Gender", 0.5) is None
    assert value_label("ICUType", 3) == "Medical ICU" and value_label("ICUType", 9) is None
    assert value_label("Age", 1) is None and value_label("Gender", math.nan) is None
    assert binary_summary("Gender", 0.564) == "56.4% male (1 = male, 0 = female)"
    assert binary_summary("MechVent", 0.2) == "20.0% = 1"  # no label: the code as before
    frame = pd.DataFrame({"Gender": [1, 0, math.nan], "ICUType": [2, "Surgical ICU", 4]})
    shown = with_value_labels(frame)
    assert shown["Gender"].tolist()[:2] == ["male", "female"] and math.isnan(shown["Gender"][2])
    assert shown["ICUType"].tolist() == [
        "Cardiac Surgery Recovery Unit",
        "Surgical ICU",  # already a label: kept
        "Surgical ICU",
    ]
    assert frame["Gender"].tolist()[:2] == [1, 0]  # the input is not changed


def test_every_physionet_variable_has_a_plausible_range_in_its_unit():
    assert set(TIME_SERIES) <= set(PLAUSIBLE) and {"Age", "Height", "Weight"} <= set(PLAUSIBLE)
    assert all(r.low < r.high for r in PLAUSIBLE.values())
    assert variable_of("HR_mean") == "HR" and variable_of("Weight_first") == "Weight"
    assert variable_of("notes_mean") == "notes_mean"


def test_implausible_values_are_counted_per_column_without_records():
    rows = "id,Height,Weight,HR_mean,Gender\n" + "".join(
        f"p{i},{h},{w},{hr},{i % 2}\n"
        for i, (h, w, hr) in enumerate(
            [(462, 472, 80), (170, 70, 85), (15, 60, 90), (180, 85, 400), (165, 19, 75)]
        )
    )
    cohort = load_cohort("wide_table", {"table": NamedInput("t.csv", rows.encode())}, {})
    flagged = implausible_values(cohort).set_index("column")
    assert flagged.loc["Height", ["below", "above"]].tolist() == [1, 1]  # 15 cm and 462 cm
    assert flagged.loc["Weight", ["below", "above"]].tolist() == [1, 1]  # 19 kg and 472 kg
    assert flagged.loc["HR_mean", ["below", "above"]].tolist() == [0, 1]
    assert flagged.loc["Height", "plausible range"] == "100-250 cm"
    assert flagged.loc["Height", "share of values"] == 0.4
    assert "Gender" not in flagged.index
    assert not flagged.astype(str).apply(lambda c: c.str.contains("p[0-9]")).any().any()
    summary = summarize(cohort)
    assert summary.implausible.equals(implausible_values(cohort))
    gender = summary.features.set_index("feature").loc["Gender", "summary"]
    assert gender == "40.0% male (1 = male, 0 = female)"


def test_series_values_are_checked_too_and_a_plausible_cohort_flags_nothing():
    records = {
        "set-a/1.txt": record_text([("00:00", "RecordID", "1"), ("00:10", "Temp", "37.1")]),
        "set-a/2.txt": record_text([("00:00", "RecordID", "2"), ("00:10", "Temp", "3.7")]),
    }
    flagged = implausible_values(load_physionet2012(make_tar_gz(records)))
    assert flagged["column"].tolist() == ["Temp"] and flagged["below"].tolist() == [1]
    good = {"set-a/1.txt": records["set-a/1.txt"]}
    assert implausible_values(load_physionet2012(make_tar_gz(good))).empty
