"""Real-browser journey for visit sequences: eICU demo visits from the server's data folder ->
generate with the shipped EHRPD model -> timeline -> review -> download MEDS (read back)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.data.visit_loaders import load_meds
from tests.browser.conftest import STEP_TIMEOUT_MS, Journey, new_page

pytestmark = pytest.mark.browser
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
if not (DATA / "eicu-demo").is_dir():
    pytest.skip("../shared/data/eicu-demo is not present", allow_module_level=True)


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


def test_sequence_journey_eicu_generate_timeline_review_meds(data_root, server, browser, tmp_path):
    context, page = new_page(browser)
    j = Journey(page, "ehrpd")
    page.goto(server.url)
    j.see("System status")
    j.idle()
    j.nav("Cohort")
    page.get_by_text("Files on this server").first.click()
    j.idle()
    j.choose("Format", "eICU unit stays")
    for label, path in (
        ("patient.csv(.gz)", "eicu-demo/patient.csv.gz"),
        ("diagnosis.csv(.gz)", "eicu-demo/diagnosis.csv.gz"),
        ("admissionDx.csv(.gz)", "eicu-demo/admissionDx.csv.gz"),
        ("pastHistory.csv(.gz)", "eicu-demo/pastHistory.csv.gz"),
    ):
        j.choose(label, path)
    j.button("Load cohort")
    j.see("Visits per patient")
    j.see("1,095")  # visits of the 416 patients with two or more unit stays
    j.shot("visits-loaded")
    j.nav("Generate")
    j.choose("Model", "EHRPD")
    page.get_by_label("Patients", exact=True).fill("100")
    j.button("Generate")
    j.see("Synthetic sets in this session")
    j.see("days since the first visit")
    page.get_by_text("days since the first visit").first.scroll_into_view_if_needed()
    j.shot("timeline")
    j.nav("Review")
    j.button("Run review")
    j.see("Release gate")
    page.get_by_text("What the metrics mean").first.click()
    j.see("Consecutive-visit co-occurrence")  # the sequence metrics are in the review
    j.shot("reviewed")
    j.nav("Generate")
    with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:
        page.get_by_role("button", name="MEDS (Parquet)").click()
    path = tmp_path / "synthetic.meds.parquet"
    download.value.save_as(path)
    meds = load_meds(path)
    assert meds.n_patients == 100 and meds.modalities == (
        "admission_dx",
        "diagnosis",
        "past_history",
    )
    context.close()
