"""Real-browser journeys: the real server (`streamlit run app.py`) driven by Debian's chromium
through Playwright, clicked as a user would. One PNG per step goes to test-artifacts/browser/.

Skipped, with the reason, when chromium or Playwright is absent (`.ci/run` installs both).
"""

from __future__ import annotations

import pytest

from tests.artifact_scan import TrainingCohort
from tests.browser.conftest import STEP_TIMEOUT_MS, Journey, demo_cohort, new_page, scan_server

pytestmark = pytest.mark.browser


def test_ehr_journey_demo_generate_review_and_report(server, browser, tmp_path):
    context, page = new_page(browser)
    j = Journey(page, "ehr")
    page.goto(server.url)
    j.see("System status")
    j.idle()
    j.shot("home")
    j.load_demo_cohort()
    j.shot("cohort-loaded")
    j.nav("Generate")
    j.see("Model card")
    j.button("Generate")
    j.see("Synthetic sets in this session")
    j.see("Dimension-wise probability")
    j.shot("generated")
    j.nav("Review")
    j.button("Add independent-marginals baseline")
    # Both sets are chosen before the review runs.
    j.page.locator('[data-testid="stMultiSelect"]').get_by_text(
        "Independent marginals (baseline)"
    ).first.wait_for()
    j.button("Run review")
    j.see("Release gate")
    j.see("Per-column fidelity: worst 20")
    page.get_by_text("Per-column fidelity", exact=True).first.scroll_into_view_if_needed()
    j.shot("per-column")
    page.get_by_text("Release gate").first.scroll_into_view_if_needed()
    j.shot("reviewed")
    # Issue 30: the attack battery (TPR at low FPR, epsilon bound) and its ROC on a log-FPR axis
    j.see("Each attack scores every real patient")
    page.get_by_text("Membership attacks", exact=True).first.scroll_into_view_if_needed()
    j.see("Membership attacks: ROC on a log false-positive axis")
    j.shot("attack-battery")
    # ... and the offline audits recorded in the shipped model's manifest (python -m core.audit)
    j.see("canary audit (Steinke")
    # the caption under the table: scrolled to, the whole table is in view above it
    page.get_by_text("never recomputes them").first.scroll_into_view_if_needed()
    j.shot("offline-audits")
    # the per-patient drill-down starts from the strongest attack of the review
    page.get_by_text("Most exposed training patients").first.click()
    j.see("strongest in this review")
    j.button("Compute the per-patient ranking")
    ranked = page.get_by_text("training patients have p < 0.01").first
    ranked.wait_for(state="attached")
    if not ranked.is_visible():  # the rerun drew the expander closed
        page.get_by_text("Most exposed training patients").first.click()
    ranked.wait_for(state="visible")
    page.get_by_text("strongest in this review").first.scroll_into_view_if_needed()
    j.shot("most-exposed-patients")
    with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Download HTML report").click()
    path = tmp_path / "report.html"
    download.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    assert "Synthetic data review" in text and "Release gate" in text
    assert "Independent marginals (baseline)" in text and "Plotly.newPlot" in text
    assert "Per-column table (worst first; click a header to sort)" in text
    context.close()
    scan_server(server, demo_cohort(), path)


def test_flexgen_journey_complete_patients_in_the_browser(server, browser):
    context, page = new_page(browser)
    j = Journey(page, "flexgen")
    page.goto(server.url)
    j.see("System status")
    j.idle()
    j.nav("Generate")
    j.choose("Model", "FLEXGEN-EHR")
    j.see("Latent DDPM, 50 ancestral steps")
    j.shot("flexgen-selected")
    page.get_by_label("Patients", exact=True).fill("100")
    j.button("Generate")
    j.see("Static part (one row per synthetic patient)")
    j.see("observed values (points)")
    page.get_by_text("observed values (points)").first.scroll_into_view_if_needed()
    j.shot("flexgen-patients")
    assert page.get_by_role("button", name="Both in one Parquet").count() == 1
    context.close()


def test_cxr_journey_example_forecast_downloads_and_hostile_uploads(server, browser, tmp_path):
    from tests.core.cxr.fixtures import SECRET_NAME, dicom_bytes, phantom

    context, page = new_page(browser)
    j = Journey(page, "cxr")
    page.goto(server.url)
    j.see("System status")
    j.idle()
    j.nav("CXR Forecast")
    j.see("not for diagnosis")
    j.see("as the model sees it")
    j.see("CC BY 3.0")  # the real example's attribution
    j.see("Validated on")
    j.shot("example-loaded")
    j.button("Forecast", exact=True)  # not the horizon's help icon
    j.see("samples, 4 days ahead")
    j.see("True later X-ray")
    page.get_by_role("button", name="Forecast mean (PNG)").wait_for()
    page.get_by_text("Images: Winther HB").last.scroll_into_view_if_needed()
    j.shot("forecast")
    with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Forecast mean (PNG)").click()
    path = tmp_path / "mean.png"
    download.value.save_as(path)
    from PIL import Image

    with Image.open(path) as img:
        # the 256 px image plus the label strip above it and the attribution strip below it
        assert img.format == "PNG" and img.size[0] == 256 and img.size[1] > 256
    # hostile and identifying uploads: a text file, then a DICOM with a patient name
    page.get_by_text("Upload", exact=True).first.click()
    j.idle()
    uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]').first
    uploader.set_input_files(
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image"}]
    )
    j.see("not a readable image")
    j.shot("bad-upload")
    uploader.set_input_files(
        files=[
            {
                "name": "scan.dcm",
                "mimeType": "application/dicom",
                "buffer": dicom_bytes(phantom(96)),
            }
        ]
    )
    j.see("MONOCHROME1: inverted")
    j.shot("dicom-upload")
    assert SECRET_NAME not in page.content()
    j.button("Forecast", exact=True)  # not the horizon's help icon
    j.see("samples, 4 days ahead")
    context.close()


def test_model_store_journey_train_reload_find_download_delete_upload_generate(
    server, browser, tmp_path
):
    """Train on an uploaded cohort, reload mid-training and see it continue, find the finished
    model on the Models page, download it, delete it, upload the file back, and generate from it
    in a fresh browser context."""
    import pandas as pd

    from tests.browser.conftest import ROOT

    stays = pd.read_parquet(ROOT / "assets" / "demo" / "icu_stays.parquet").iloc[:400]
    cohort = tmp_path / "site_cohort.csv"
    stays.drop(columns="In-hospital_death").to_csv(cohort, index=False)

    context, page = new_page(browser)
    j = Journey(page, "store")
    page.goto(server.url)
    j.see("System status")
    j.idle()
    j.upload_wide_cohort(cohort)
    j.nav("Generate")
    page.get_by_text("Train a model on the session cohort").first.click()
    j.idle()
    steps = page.get_by_role("spinbutton", name="Training steps")
    steps.fill("600")
    steps.press("Enter")
    j.idle()
    j.choose("Network size", "small")
    j.button("Start training")
    j.see("site_cohort.csv): step")  # the progress line (the collapsed card also says "steps")
    j.shot("training")
    page.reload()  # the job lives on the server: the reloaded page finds it again
    page.get_by_text("Train a model on the session cohort").first.wait_for()
    progress = page.get_by_text("site_cohort.csv): step")
    progress.first.wait_for(timeout=STEP_TIMEOUT_MS)
    j.shot("reattached-after-reload")
    j.see("saved it in the model store")
    j.shot("trained-and-stored")

    j.nav("Models")
    j.see("Stored model")
    with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Download model (.zip)").click()
    model_file = tmp_path / "model.zip"
    download.value.save_as(model_file)
    j.shot("models-page")
    j.button("Delete…")
    j.see("cannot be undone")
    j.button("Yes, delete it")
    j.see("No stored model yet")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(model_file)
    j.see("(ehrdiff): verified.")  # the upload's own line, not the page caption
    j.shot("uploaded-back")
    context.close()

    context, page = new_page(browser)  # a fresh browser context: nothing of the first session
    j = Journey(page, "store-fresh")
    page.goto(server.url)
    j.see("System status")
    j.idle()
    j.nav("Generate")
    j.choose("Model", "(stored)")
    j.see("Model card")
    j.button("Generate")
    j.see("Synthetic sets in this session")
    j.shot("generated-from-stored-model")
    assert page.locator('[data-testid="stException"]').count() == 0
    context.close()
    scan_server(server, TrainingCohort.from_frame(stays, "record_id"), model_file)
