import numpy as np
import pytest

from core.data.formats import NamedInput, load_cohort
from core.data.tables import load_long_timeseries, load_wide_table
from core.errors import CohortError, ConfigError

WIDE = (
    "patient_id,age,sex,smoker,icu,label\n"
    "p1,54,F,yes,MICU,0\np2,76,M,no,SICU,1\np3,,F,no,MICU,0\np4,44.5,M,yes,CCU,1\np5,60,F,no,MICU,0\n"
)


def test_wide_table_inference():
    c = load_wide_table(WIDE.encode(), label_column="label", name="t.csv")
    kinds = {f.name: f.kind for f in c.static_features}
    assert kinds == {
        "age": "numeric",
        "sex": "categorical",
        "smoker": "binary",
        "icu": "categorical",
    }
    assert list(c.record_ids) == ["p1", "p2", "p3", "p4", "p5"]
    assert np.isnan(c.static["age"].iloc[2]) and c.static["smoker"].tolist() == [1, 0, 0, 1, 0]
    assert c.labels.tolist() == [0, 1, 0, 1, 0] and c.label_classes == ("0", "1")


def test_wide_table_overrides():
    c = load_wide_table(WIDE.encode(), types={"sex": "drop", "age": "categorical"})
    assert [f.name for f in c.static_features] == ["age", "smoker", "icu", "label"]
    assert c.static_features[0].kind == "categorical"
    with pytest.raises(ConfigError, match="not in"):
        load_wide_table(WIDE.encode(), types={"nope": "numeric"})


def test_non_numeric_value_in_numeric_column_names_line():
    bad = WIDE.replace("p4,44.5", "p4,forty").replace("p5,60", "p5,61")
    with pytest.raises(CohortError, match="expected a number, found 'forty'") as err:
        load_wide_table(bad.encode(), types={"age": "numeric"}, name="t.csv")
    assert (err.value.line, err.value.column) == (5, "age")


def test_duplicate_ids_are_refused_with_lines():
    with pytest.raises(CohortError, match="duplicate id 'p1' on lines 2, 4"):
        load_wide_table(b"patient_id,age\np1,3\np2,4\np1,5\n")


def test_free_text_column_asks_for_a_type():
    rows = "".join(f"p{i},note number {i}\n" for i in range(100))
    with pytest.raises(CohortError, match="free text or an identifier") as err:
        load_wide_table(("patient_id,note\n" + rows).encode())
    assert err.value.column == "note"


def test_unicode_headers_and_infinite_values():
    c = load_wide_table("id,âge,größe\na,1.5,3\nb,2,4\nc,3,5\n".encode())
    assert [f.name for f in c.static_features] == ["âge", "größe"]
    with pytest.raises(CohortError, match="infinite"):
        load_wide_table(b"id,x\na,1\nb,inf\nc,2\n")


LONG = "id,time,variable,value\na,0.5,HR,80\na,0.7,HR,90\na,2,Temp,37\nb,1.2,HR,70\nb,60,HR,60\n"


def test_long_timeseries_to_grid():
    c = load_long_timeseries(LONG.encode(), n_steps=4, step_hours=1.0)
    t = c.temporal
    assert t.variables == ("HR", "Temp") and t.values.shape == (2, 4, 2)
    assert t.values[0, 0, 0] == 85 and t.values[0, 2, 1] == 37 and t.values[1, 1, 0] == 70
    assert t.mask.sum() == 3 and any("outside" in n for n in c.notes)
    last = load_long_timeseries(LONG.encode(), n_steps=4, aggregate="last")
    assert last.temporal.values[0, 0, 0] == 90


def test_long_timeseries_clock_and_datetime_times():
    clock = "id,time,variable,value\na,00:30,HR,80\na,01:15,HR,90\n"
    assert load_long_timeseries(clock.encode(), n_steps=2).temporal.values[0, :, 0].tolist() == [
        80,
        90,
    ]
    stamps = "id,time,variable,value\na,2020-01-01 10:00,HR,80\na,2020-01-01 12:30,HR,90\n"
    assert load_long_timeseries(stamps.encode(), n_steps=3).temporal.values[0, 2, 0] == 90
    minutes = "id,time,variable,value\na,90,HR,80\n"
    assert load_long_timeseries(minutes.encode(), n_steps=3, time_unit="minutes").temporal.mask[
        0, 1, 0
    ]


def test_long_timeseries_bad_value_and_time():
    with pytest.raises(CohortError, match="expected a number, found 'high'") as err:
        load_long_timeseries(b"id,time,variable,value\na,1,HR,80\na,2,HR,high\n", name="ts.csv")
    assert err.value.line == 3
    with pytest.raises(CohortError, match="time 'inf' is not a finite number") as err:
        load_long_timeseries(b"id,time,variable,value\na,1,HR,80\na,inf,HR,81\n")
    assert err.value.line == 3
    with pytest.raises(CohortError, match="neither a number"):
        load_long_timeseries(b"id,time,variable,value\na,yesterday,HR,80\n")


def test_long_series_with_a_static_table_keeps_records_missing_either_part():
    series = b"id,time,variable,value\na,0,HR,80\na,1,HR,82\nb,0,HR,90\nc,2,Temp,37.5\n"
    static = b"record_id,age,unit,died\na,70,medical,0\nb,55,surgical,1\nd,40,medical,0\n"
    cohort = load_cohort(
        "long_timeseries",
        {"table": NamedInput("series.csv", series), "static": NamedInput("static.csv", static)},
        {"n_steps": 4, "static_id_column": "record_id", "label_column": "died"},
    )
    assert list(cohort.record_ids) == ["a", "b", "c", "d"]
    assert cohort.static["age"].isna().tolist() == [False, False, True, False]
    assert cohort.temporal.mask.any(axis=(1, 2)).tolist() == [True, True, True, False]
    assert cohort.labels.tolist() == [0, 1, -1, 0]
    assert str(cohort.static["unit"].iloc[1]) == "surgical"
    assert any(
        "1 record(s) have a series but no static row, 1 a static row" in n for n in cohort.notes
    )


def test_long_series_variables_are_ordered_case_insensitively_like_physionet():
    text = b"id,time,variable,value\na,0,pH,7.4\na,0,HR,80\na,0,Albumin,3\na,0,ALP,50\n"
    c = load_long_timeseries(text, n_steps=2)
    assert c.temporal.variables == ("Albumin", "ALP", "HR", "pH")
    assert c.temporal.values[0, 0].tolist() == [3, 50, 80, 7.400000095367432]
