"""Real-browser journey with several cohorts in one session: the demo records and the eICU demo
visits (from the server's data folder), generated from (the visits downloaded as MEDS and read
back) and reviewed one after the other, then the
sidebar's "Session cohort" back to the first; the ICD codes' descriptions on the Cohort page; and
EHRPD trained from the Generate page on an uploaded MIMIC-III-format visit cohort made by code
(its automatic model name, once refused for its comma, is accepted and the model stored)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.visit_loaders import load_meds
from tests.browser.conftest import (
    STEP_TIMEOUT_MS,
    Journey,
    demo_cohort,
    expect,
    new_page,
    scan_server,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
if not (DATA / "eicu-demo").is_dir():
    pytest.skip(
        "../shared/data/eicu-demo (the eICU demo, the second cohort) is not present",
        allow_module_level=True,
    )

DEMO = "Table (icu_stays.parquet)"  # the shipped demo cohort's name (the first cohort)
EICU = "eICU visits (patient.csv.gz, 3digit)"
MIMIC = "MIMIC visits (ADMISSIONS.csv, 3digit)"
# The eICU visits' most frequent 3-digit ICD-9 diagnoses (held by 67 and 66 of the 416 patients)
# with core.data.icd_text.describe's words, as the "Most common diagnosis codes" axis shows them.
ICD_TEXT = ("584 · Acute and unspecified renal failure", "486 · Pneumonia, organism unspecified")
MIMIC_TEXT = "427 · Cardiac dysrhythmias"  # its 42731 (atrial fibrillation) at 3 digits
DEMO_SET = "ehrdiff-physionet2012"  # the start of its set's automatic name
EICU_SET = "ehrpd-eicu · seed 0"
AUTO_NAME = "EHRPD on MIMIC visits (ADMISSIONS.csv 3digit)"  # the cohort's name, made safe
ICD9 = ("4019", "42731", "4280", "25000", "5849", "486", "41401", "2724")


@pytest.fixture(scope="module")
def data_root():
    """The server reads CSS_DATA_ROOT when it starts: set it before the server fixture."""
    old = os.environ.get("CSS_DATA_ROOT")
    os.environ["CSS_DATA_ROOT"] = str(DATA)
    yield
    if old is None:
        os.environ.pop("CSS_DATA_ROOT")
    else:
        os.environ["CSS_DATA_ROOT"] = old


def mimic3_visits(folder: Path, n_subjects: int = 120, seed: int = 0) -> tuple[Path, Path]:
    """A made-up MIMIC-III cohort (no real data): 2-4 admissions per subject, 1-4 ICD-9 codes
    per admission, dates in MIMIC's shifted future."""
    rng = np.random.default_rng(seed)
    admissions, diagnoses = [], []
    hadm = 100_000
    for subject in range(1, n_subjects + 1):
        when = pd.Timestamp("2130-01-01") + pd.Timedelta(days=int(rng.integers(0, 3000)))
        for _ in range(int(rng.integers(2, 5))):
            hadm += 1
            when += pd.Timedelta(days=int(rng.integers(5, 400)), hours=int(rng.integers(0, 24)))
            admissions.append((subject, hadm, when.isoformat(sep=" "), int(rng.random() < 0.1)))
            codes = rng.choice(ICD9, size=int(rng.integers(1, 5)), replace=False)
            diagnoses += [(subject, hadm, seq, code) for seq, code in enumerate(codes, 1)]
    adm = folder / "ADMISSIONS.csv"
    pd.DataFrame(
        admissions, columns=["SUBJECT_ID", "HADM_ID", "ADMITTIME", "HOSPITAL_EXPIRE_FLAG"]
    ).to_csv(adm, index=False)
    dx = folder / "DIAGNOSES_ICD.csv"
    frame = pd.DataFrame(diagnoses, columns=["SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"])
    frame.insert(0, "ROW_ID", range(1, len(frame) + 1))
    frame.to_csv(dx, index=False)
    return adm, dx


def no_exception(j: Journey) -> None:
    assert j.page.locator('[data-testid="stException"]').count() == 0


def shot_at(j: Journey, text: str, what: str) -> None:
    """A screenshot with ``text`` scrolled into view (the app scrolls inside its own pane, so a
    full-page screenshot holds only what is in view)."""
    j.page.get_by_text(text).first.scroll_into_view_if_needed()
    j.shot(what)


def test_two_cohorts_switch_back_icd_text_and_ehrpd_training_on_mimic(
    data_root, server, browser, tmp_path
):
    context, page = new_page(browser)
    j = Journey(page, "cohorts")
    page.goto(server.url)
    j.see("System status")
    j.idle()

    # 1. the first cohort: the shipped demo, the shipped EHRDiff model, reviewed
    j.load_demo_cohort()
    j.nav("Generate")
    j.see("Model card")
    j.button("Generate")
    j.see("Synthetic sets in this session")
    j.see("Dimension-wise probability")
    shot_at(j, "Synthetic sets in this session", "demo-generated")
    j.nav("Review")
    j.run_review()
    j.see(f"Real cohort: {DEMO}")
    j.see(DEMO_SET)  # the set reviewed, in the summary's header
    j.shot("demo-reviewed")

    # 2. the second cohort: the eICU demo visits from the server's folder, their codes described
    j.nav("Cohort")
    page.get_by_text("Files on this server").first.click()
    j.idle()
    j.choose("Format", "eICU unit stays (visit sequences)")
    for label, path in (
        ("patient.csv(.gz)", "eicu-demo/patient.csv.gz"),
        ("diagnosis.csv(.gz)", "eicu-demo/diagnosis.csv.gz"),
        ("admissionDx.csv(.gz)", "eicu-demo/admissionDx.csv.gz"),
        ("pastHistory.csv(.gz)", "eicu-demo/pastHistory.csv.gz"),
    ):
        j.choose(label, path)
    j.button("Load cohort")
    j.see("1,095")  # visits of the 416 patients with two or more unit stays
    j.see(f"Loaded in this session: {DEMO} (records); {EICU} (shown) (visits)")
    j.see("Most common diagnosis codes")
    for text in ICD_TEXT:  # the chart's axis labels: SVG text, in the DOM
        j.see(text)
    shot_at(j, ICD_TEXT[0], "eicu-loaded-icd-descriptions")

    j.nav("Generate")
    j.choose("Model", "EHRPD")
    page.get_by_label("Patients", exact=True).fill("100")
    j.button("Generate")
    j.see("days since the first visit")
    shot_at(j, "days since the first visit", "eicu-generated")
    with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:  # read back as MEDS
        page.get_by_role("button", name="MEDS (Parquet)").click()
    meds_path = tmp_path / "synthetic.meds.parquet"
    download.value.save_as(meds_path)
    meds = load_meds(meds_path)
    assert meds.n_patients == 100
    assert meds.modalities == ("admission_dx", "diagnosis", "past_history")
    j.nav("Review")
    j.run_review()
    j.see(f"Real cohort: {EICU}")
    page.get_by_text("What the metrics mean").first.click()
    j.see("Consecutive-visit co-occurrence")  # the sequence metrics: the visits were reviewed
    j.shot("eicu-reviewed")

    # 3. back to the first cohort with the sidebar's switcher, on the Review page: it compares
    # with the demo again, refuses the EHRPD set with the reason, says the eICU review is out of
    # date (naming both cohorts), brings back the demo's set as chosen and reviews it again
    j.choose("Session cohort", DEMO)
    j.see(f"Real cohort: {DEMO}")
    j.see(f"{EICU_SET} (made for {EICU}) cannot be compared with this cohort")
    j.see("the cohort changed since this review (was")
    j.see(f"({EICU}, 416 patients), now")
    shot_at(j, "This review is out of date", "switched-back-review-out-of-date")
    # the demo's set is chosen again by itself: the Review remembers each cohort's choice
    expect(page.locator('[data-testid="stMultiSelect"]').first).to_contain_text(DEMO_SET)
    j.button("Run review")
    j.see("Release gate")
    assert page.get_by_text("This review is out of date").count() == 0
    j.see(DEMO_SET)
    j.shot("switched-back-demo-reviewed-again")
    j.nav("Cohort")
    j.see(f"{DEMO} (shown) (records); {EICU} (visits)")
    expect(page.locator('[data-testid="stMetric"]', has_text="Records")).to_contain_text("2,000")
    j.shot("switched-back-cohort")
    j.nav("Generate")
    j.see("Synthetic sets in this session")
    j.see("Dimension-wise probability")  # the demo's set, shown first, as records
    shot_at(j, "Synthetic sets in this session", "switched-back-generate")
    no_exception(j)

    # 4. EHRPD trained from the page on an uploaded MIMIC-III visit cohort
    admissions, diagnoses = mimic3_visits(tmp_path)
    j.nav("Cohort")
    page.get_by_text("Upload", exact=True).first.click()
    j.idle()
    j.choose("Format", "MIMIC-III / MIMIC-IV admissions (visit sequences)")
    j.see("One visit per admission")
    j.idle()
    for label, path in (("ADMISSIONS.csv", admissions), ("DIAGNOSES_ICD.csv", diagnoses)):
        uploader = page.locator('[data-testid="stFileUploader"]', has_text=label).first
        uploader.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(path)
        j.idle()
    j.button("Load cohort")
    j.see(MIMIC)
    j.see("Most common diagnosis codes")
    j.see(MIMIC_TEXT)
    shot_at(j, MIMIC_TEXT, "mimic-loaded")
    j.nav("Generate")
    page.get_by_text("Train a model on the session cohort").first.click()
    j.idle()
    family = page.locator('[data-testid="stRadio"]', has_text="Model family").first
    family.get_by_text("EHRPD", exact=True).click()
    j.idle()
    steps = page.get_by_role("spinbutton", name="Training steps")
    steps.fill("100")  # the least the form allows
    steps.press("Enter")
    j.idle()
    name = page.get_by_role("textbox", name="Model name")
    assert name.get_attribute("placeholder") == AUTO_NAME  # the cohort's comma made a space
    shot_at(j, "Start training", "mimic-training-form")
    j.button("Start training")
    j.see("saved it in the model store")
    j.see(f"Trained {AUTO_NAME} in")
    shot_at(j, "saved it in the model store", "mimic-trained-and-stored")
    no_exception(j)
    assert page.get_by_text("This name cannot be used").count() == 0
    assert page.get_by_text("Training failed").count() == 0
    j.nav("Models")
    stored = page.get_by_role("combobox", name="Stored model")
    expect(stored).to_have_value(AUTO_NAME)  # the store took the automatic name
    j.shot("mimic-model-in-store")
    context.close()
    scan_server(server, demo_cohort())
