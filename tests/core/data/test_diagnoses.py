import numpy as np
import pytest

from core.data import icd
from core.data.diagnoses import load_eicu_diagnoses, load_mimic3_diagnoses, load_mimic4_diagnoses
from core.errors import CohortError, ConfigError
from tests.conftest import (
    EICU_DIAGNOSIS,
    EICU_PATIENT,
    MIMIC3_DIAGNOSES,
    MIMIC4_DIAGNOSES,
    shared_path,
)


def codes_of(cohort, record_id):
    row = list(cohort.record_ids).index(record_id)
    dense = cohort.codes.dense()[row]
    return {cohort.codes.vocabulary[j] for j in np.flatnonzero(dense)}


@pytest.mark.parametrize(
    ("code", "three", "chapter"),
    [
        ("40301", "403", "390-459 Circulatory system"),
        ("E8889", "E888", icd.ICD9_E_CHAPTER),
        ("V5867", "V58", icd.ICD9_V_CHAPTER),
        ("486", "486", "460-519 Respiratory system"),
        ("0389", "038", "001-139 Infectious and parasitic"),
    ],
)
def test_icd9_granularity_as_ehrdiff(code, three, chapter):
    assert icd.icd9_3digit(code) == three
    assert icd.icd9_chapter(code) == chapter


@pytest.mark.parametrize(
    ("token", "version"),
    [
        ("401.9", 9),
        ("I10", 10),
        ("E849.7", 9),
        ("E11.9", 10),
        ("V30.00", 9),
        ("J96.00", 10),
        ("31.1", None),
        ("", None),
    ],
)
def test_dotted_tokens_are_told_apart(token, version):
    assert icd.classify_dotted(token) == version


def test_mimic3_per_admission_and_patient():
    adm = load_mimic3_diagnoses(MIMIC3_DIAGNOSES.encode(), name="DIAGNOSES_ICD.csv")
    assert adm.n_records == 3 and adm.n_patients == 2
    assert codes_of(adm, "173633") == {"E888", "V58"}
    assert codes_of(adm, "174105") == {"531", "410", "401"}
    pat = load_mimic3_diagnoses(MIMIC3_DIAGNOSES.encode(), per="patient", granularity="full")
    assert list(pat.record_ids) == ["109", "112"]
    assert codes_of(pat, "109") == {"40301", "486", "E8889", "V5867"}
    chap = load_mimic3_diagnoses(MIMIC3_DIAGNOSES.encode(), per="patient", granularity="chapter")
    assert codes_of(chap, "112") == {"520-579 Digestive system", "390-459 Circulatory system"}


def test_mimic4_versions_are_prefixed_when_mixed():
    c = load_mimic4_diagnoses(MIMIC4_DIAGNOSES.encode())
    assert codes_of(c, "22841357") == {"ICD10:I10"}
    # E119 is ICD-10 (diabetes) and E8497 ICD-9 (place of injury): the version column decides.
    assert codes_of(c, "25022803") == {"ICD10:E11", "ICD9:E849"}
    only9 = load_mimic4_diagnoses(MIMIC4_DIAGNOSES.encode(), versions=(9,))
    assert set(only9.codes.vocabulary) == {"572", "789", "E849"} and only9.n_records == 2


def test_mimic4_bad_version_names_line():
    bad = MIMIC4_DIAGNOSES.replace("I10,10", "I10,11").encode()
    with pytest.raises(CohortError, match="expected 9 or 10, found '11'") as err:
        load_mimic4_diagnoses(bad, name="dx.csv")
    assert err.value.line == 4 and err.value.column == "icd_version"


def test_eicu_with_patient_table_groups_and_labels():
    c = load_eicu_diagnoses(EICU_DIAGNOSIS.encode(), patient_table=EICU_PATIENT.encode())
    # stays 13 (no code) and 14 (ICD-10 only) have no ICD-9 code
    assert list(c.record_ids) == ["10", "11", "12"]
    assert list(c.patient_ids) == ["002-1", "002-1", "002-2"]
    assert c.labels.tolist() == [0, 1, 0]
    assert codes_of(c, "10") == {"401", "780"}
    assert codes_of(c, "12") == {"E980", "965"}
    both = load_eicu_diagnoses(EICU_DIAGNOSIS.encode(), versions=(9, 10), granularity="full")
    assert codes_of(both, "14") == {"ICD10:E119"}
    assert codes_of(both, "10") == {
        "ICD9:4019",
        "ICD9:4011",
        "ICD9:78009",
        "ICD10:I10",
        "ICD10:R4182",
    }


def test_eicu_stay_missing_from_patient_table():
    with pytest.raises(CohortError, match="not in the patient table"):
        load_eicu_diagnoses(
            EICU_DIAGNOSIS.encode(),
            patient_table=b"patientunitstayid,uniquepid,hospitaldischargestatus\n10,a,Alive\n",
        )


def test_missing_column_and_wrong_delimiter_messages():
    with pytest.raises(CohortError, match="missing required column\\(s\\) 'ICD9_CODE'"):
        load_mimic3_diagnoses(b"SUBJECT_ID,HADM_ID,CODE\n1,2,401\n", name="dx.csv")
    semicolon = MIMIC3_DIAGNOSES.replace(",", ";").encode()
    assert load_mimic3_diagnoses(semicolon).n_records == 3  # sniffed, not refused


def test_bad_options():
    with pytest.raises(ConfigError, match="granularity"):
        load_mimic3_diagnoses(MIMIC3_DIAGNOSES.encode(), granularity="2digit")
    with pytest.raises(ConfigError, match="per 'admission' or per 'patient'"):
        load_mimic3_diagnoses(MIMIC3_DIAGNOSES.encode(), per="visit")


@pytest.mark.shared_data
def test_real_eicu_demo():
    folder = shared_path("eicu-demo")
    c = load_eicu_diagnoses(folder / "diagnosis.csv.gz", patient_table=folder / "patient.csv.gz")
    # 1,967 stays have a non-empty icd9code; 3 of them hold only ICD-10 codes.
    assert c.n_records == 1964
    assert load_eicu_diagnoses(folder / "diagnosis.csv.gz", versions=(9, 10)).n_records == 1967
    assert c.n_patients < c.n_records  # repeated stays of one patient are grouped
    assert c.codes.system == "ICD-9" and all(len(v) in (3, 4) for v in c.codes.vocabulary)
    prev = dict(zip(c.codes.vocabulary, c.codes.prevalence(), strict=True))
    assert max(prev, key=prev.get) == "518"  # respiratory failure leads in this ICU cohort
    assert set(np.unique(c.labels)) == {-1, 0, 1}
