"""Visit-sequence cohorts and their loaders (MEDS, MIMIC-III/IV, eICU) on fixtures written here,
plus the eICU demo when ../shared/data is present."""

from __future__ import annotations

import gzip
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.formats import FORMATS, NamedInput, load_cohort
from core.data.visit_loaders import load_eicu_visits, load_meds, load_mimic_visits
from core.data.visits import patient_table
from core.errors import CohortError, CoreError

ROOT = Path(__file__).resolve().parents[3]
EICU_DEMO = ROOT.parent / "shared" / "data" / "eicu-demo"


def meds_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf)
    return buf.getvalue()


MEDS_FRAME = pd.DataFrame(
    {
        "subject_id": [1, 1, 1, 1, 2, 2, 2, 1],
        "time": pd.to_datetime(
            [
                "2020-01-01 08:00",
                "2020-01-01 09:00",
                "2020-01-03 08:00",
                "2020-01-03 10:00",
                "2021-05-01 00:00",
                "2021-05-11 00:00",
                "2021-05-11 00:00",
                "2020-01-04 08:00",
            ]
        ),
        "code": [
            "DIAGNOSIS//ICD9//401",
            "MEDICATION//aspirin",
            "DIAGNOSIS//ICD9//250",
            "LAB//51221",
            "DIAGNOSIS//ICD9//401",
            "DIAGNOSIS//ICD9//428",
            "MEDS_DEATH",
            "DIAGNOSIS//ICD9//250",
        ],
        "numeric_value": [None, None, None, 7.5, None, None, None, None],
        "visit_id": [10, 10, 11, 11, 20, 21, 21, 11],
    }
)


def test_meds_visits_by_column_with_gaps_modalities_and_death_label():
    cohort = load_meds(meds_bytes(MEDS_FRAME), name="shard.parquet")
    assert cohort.n_patients == 2 and list(cohort.visits_per_patient()) == [2, 2]
    assert cohort.modalities == ("DIAGNOSIS", "LAB", "MEDICATION")
    np.testing.assert_allclose(cohort.gap_days, [0.0, 2.0, 0.0, 10.0])  # visit starts
    assert cohort.label_name == "death" and list(cohort.labels) == [0, 1]
    assert set(cohort.vocabulary("DIAGNOSIS")) == {"ICD9//401", "ICD9//250", "ICD9//428"}
    assert any("numeric values" in n for n in cohort.notes)


def test_meds_window_and_code_rules():
    frame = MEDS_FRAME.drop(columns="visit_id")
    by_day = load_meds(meds_bytes(frame), visit_rule="window", window_hours=24)
    assert list(by_day.visits_per_patient()) == [2, 2]  # Jan 1 | Jan 3-4 (within 24 h of Jan 3)
    tight = load_meds(meds_bytes(frame), visit_rule="window", window_hours=1)
    assert list(tight.visits_per_patient()) == [4, 2]
    coded = frame.copy()
    coded.loc[[0, 2], "code"] = ["HOSPITAL_ADMISSION//ED", "HOSPITAL_ADMISSION//ED"]
    by_code = load_meds(meds_bytes(coded), visit_rule="code")
    assert list(by_code.visits_per_patient()) == [2, 1]
    assert "HOSPITAL_ADMISSION" not in by_code.modalities  # the marker is not a visit code


def test_meds_export_round_trips_through_the_loader():
    cohort = load_meds(meds_bytes(MEDS_FRAME))
    again = load_meds(meds_bytes(cohort.to_meds()))
    assert list(again.visits_per_patient()) == list(cohort.visits_per_patient())
    np.testing.assert_allclose(again.gap_days, cohort.gap_days, atol=1e-6)
    assert len(again.events) == len(cohort.events)
    long = cohort.to_long()
    assert list(long.columns) == ["subject_id", "visit", "time", "modality", "code"]


def test_meds_shards_in_a_zip_and_bad_schemas_are_named(tmp_path):
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data/0.parquet", meds_bytes(MEDS_FRAME[MEDS_FRAME.subject_id == 1]))
        zf.writestr("data/1.parquet", meds_bytes(MEDS_FRAME[MEDS_FRAME.subject_id == 2]))
    assert load_meds(buf.getvalue(), name="meds.zip").n_patients == 2
    bad = MEDS_FRAME.assign(subject_id=["x"] * len(MEDS_FRAME))
    with pytest.raises(CohortError, match="not MEDS data"):
        load_meds(meds_bytes(bad), name="bad.parquet")
    with pytest.raises(CohortError, match="bad.parquet"):
        load_meds(meds_bytes(MEDS_FRAME.drop(columns="code")), name="bad.parquet")
    with pytest.raises(CohortError, match="visit_id"):
        load_meds(meds_bytes(MEDS_FRAME.drop(columns="visit_id")), visit_rule="column")


ADMISSIONS_III = (
    "ROW_ID,SUBJECT_ID,HADM_ID,ADMITTIME,HOSPITAL_EXPIRE_FLAG\n"
    "1,7,100,2150-01-01 10:00:00,0\n"
    "2,7,101,2150-03-02 10:00:00,1\n"
    "3,8,102,2160-06-01 00:00:00,0\n"
)
DIAGNOSES_III = (
    "ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE\n"
    "1,7,100,1,4019\n2,7,100,2,25000\n3,7,101,1,4280\n4,8,102,1,4019\n5,8,102,2,XX\n"
)
PRESCRIPTIONS = "subject_id,hadm_id,drug\n7,100,Aspirin\n7,101,ASPIRIN \n8,102,Heparin\n"
ADMISSIONS_IV = (
    "subject_id,hadm_id,admittime,hospital_expire_flag\n"
    "7,100,2150-01-01 10:00:00,0\n7,101,2150-01-11 10:00:00,0\n"
)
DIAGNOSES_IV = "subject_id,hadm_id,icd_code,icd_version\n7,100,4019,9\n7,101,I10,10\n"


def test_mimic3_admissions_become_visits_with_gaps_and_modalities():
    cohort = load_mimic_visits(
        ADMISSIONS_III.encode(), DIAGNOSES_III.encode(), prescriptions=PRESCRIPTIONS.encode()
    )
    assert cohort.n_patients == 2 and list(cohort.visits_per_patient()) == [2, 1]
    np.testing.assert_allclose(cohort.gap_days, [0.0, 60.0, 0.0])
    assert cohort.modalities == ("diagnosis", "medication")
    assert set(cohort.vocabulary("medication")) == {"aspirin", "heparin"}  # case and spaces fold
    assert list(cohort.labels) == [1, 0]
    assert any("malformed" in n for n in cohort.notes)


def test_mimic4_versions_are_prefixed():
    cohort = load_mimic_visits(ADMISSIONS_IV.encode(), DIAGNOSES_IV.encode())
    assert set(cohort.vocabulary("diagnosis")) == {"ICD9:401", "ICD10:I10"}
    np.testing.assert_allclose(cohort.gap_days, [0.0, 10.0])


def test_mimic_bad_dates_name_file_line_and_column():
    bad = ADMISSIONS_III.replace("2150-03-02 10:00:00", "not a date")
    with pytest.raises(CohortError, match=r"'ADMISSIONS.csv', line 3, column 'admittime'"):
        load_mimic_visits(
            bad.encode(), DIAGNOSES_III.encode(), names={"admissions": "ADMISSIONS.csv"}
        )


PATIENT = (
    "patientunitstayid,uniquepid,patienthealthsystemstayid,hospitaladmitoffset,"
    "hospitaldischargeyear,unitvisitnumber,hospitaldischargestatus\n"
    "1,A,10,-60,2014,1,Alive\n"
    "2,A,10,-2940,2014,2,Alive\n"
    "3,A,11,0,2015,1,Expired\n"
    "4,B,12,-10,2014,1,Alive\n"
)
DIAGNOSIS = (
    "diagnosisid,patientunitstayid,icd9code\n"
    '1,1,"401.9, I10"\n2,2,"428.0"\n3,3,"250.00"\n4,4,"401.1"\n'
)
ADMISSION_DX = (
    "admissiondxid,patientunitstayid,admitdxpath\n"
    "1,1,admission diagnosis|All Diagnosis|Non-operative|Diagnosis|Cardiovascular|CHF\n"
    "2,1,admission diagnosis|Was the patient admitted from the O.R.?|No\n"
)


def test_eicu_gaps_are_exact_within_a_hospital_stay_and_unknown_across():
    cohort = load_eicu_visits(
        PATIENT.encode(), DIAGNOSIS.encode(), admission_dx=ADMISSION_DX.encode()
    )
    assert list(cohort.visits_per_patient()) == [3, 1]
    np.testing.assert_allclose(cohort.gap_days[:2], [0.0, (2940 - 60) / 1440])
    assert np.isnan(cohort.gap_days[2]) and len(cohort.known_gaps()) == 1
    assert cohort.vocabulary("admission_dx") == ("chf",)  # the O.R. question is not a diagnosis
    assert list(cohort.labels) == [1, 0]
    two = load_eicu_visits(PATIENT.encode(), DIAGNOSIS.encode(), min_visits=2)
    assert two.n_patients == 1
    table = patient_table(two, {"diagnosis": two.vocabulary("diagnosis")})
    assert table.n_records == 1 and table.codes.matrix.sum() == 3


def test_visit_formats_load_through_the_catalogue_and_split_by_patient():
    cohort = load_cohort(
        "eicu_visits",
        {
            "patient": NamedInput("patient.csv", PATIENT.encode()),
            "diagnosis": NamedInput("d.csv", DIAGNOSIS.encode()),
        },
    )
    assert FORMATS["eicu_visits"].kind == "visits" and cohort.n_visits == 4
    split = cohort.split(0.5, 0)
    assert sorted([*split.train, *split.holdout]) == [0, 1]
    sub = cohort.subset(split.train)
    assert sub.n_patients == 1 and sub.events["visit"].max() < sub.n_visits


@pytest.mark.skipif(not EICU_DEMO.is_dir(), reason="../shared/data/eicu-demo is not present")
def test_eicu_demo_patients_who_came_back():
    d = EICU_DEMO
    cohort = load_eicu_visits(
        d / "patient.csv.gz",
        d / "diagnosis.csv.gz",
        admission_dx=d / "admissionDx.csv.gz",
        past_history=d / "pastHistory.csv.gz",
        min_visits=2,
    )
    # 416 of the demo's 1,841 patients have two or more unit stays, 1,095 stays in all.
    assert (cohort.n_patients, cohort.n_visits) == (416, 1095)
    assert cohort.modalities == ("diagnosis", "admission_dx", "past_history")
    assert len(cohort.known_gaps()) + int(np.isnan(cohort.gap_days).sum()) == 1095 - 416


SEEDS = {
    "meds": {"data": meds_bytes(MEDS_FRAME)},
    "mimic_visits": {"admissions": ADMISSIONS_III.encode(), "diagnoses": DIAGNOSES_III.encode()},
    "eicu_visits": {"patient": PATIENT.encode(), "diagnosis": DIAGNOSIS.encode()},
}


@pytest.mark.parametrize("format_id", list(SEEDS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    slot_pick=st.integers(0, 3),
    cut=st.integers(0, 400),
    flip=st.integers(0, 400),
    junk=st.binary(max_size=64),
)
def test_mutated_visit_inputs_raise_only_typed_errors(format_id, slot_pick, cut, flip, junk):
    inputs = dict(SEEDS[format_id])
    slot = list(inputs)[slot_pick % len(inputs)]
    data = bytearray(inputs[slot])
    if data:
        data[flip % len(data)] ^= 0x5A
    mutated = bytes(data[: max(cut, 1)] if cut < len(data) else data) + junk
    for payload in (mutated, gzip.compress(mutated)):
        inputs[slot] = payload
        try:
            load_cohort(format_id, {k: NamedInput(f"{k}.csv", v) for k, v in inputs.items()})
        except CoreError:
            pass


def test_empty_visits_survive_the_meds_round_trip():
    from core.report.export import meds_parquet_bytes

    cohort = load_eicu_visits(PATIENT.encode(), DIAGNOSIS.encode())
    emptied = replace(cohort, events=cohort.events[cohort.events["visit"] != 1])
    again = load_meds(meds_parquet_bytes(emptied))
    assert list(again.visits_per_patient()) == list(emptied.visits_per_patient())
    assert len(again.events) == len(emptied.events)
