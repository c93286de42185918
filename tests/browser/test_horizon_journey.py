"""Real-browser journeys of issue 31: a training started in the Generate page shows its rate
and time left, is stopped, and its model is marked partial in the page and on the Models page;
10,000,000 records are refused with a message naming the limit. One PNG per step goes to
test-artifacts/browser/ (horizon-*.png)."""

from __future__ import annotations

import pytest

from core.ehrdiff.pipeline import MAX_RECORDS
from tests.browser.conftest import Journey, demo_cohort, new_page, scan_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAME = "browser stopped model"
LONG_MS = 600_000


def test_a_stopped_training_is_marked_partial_and_ten_million_records_are_refused(server, browser):
    context, page = new_page(browser)
    j = Journey(page, "horizon")
    page.goto(server.url)
    j.see("System status")
    j.idle()
    j.load_demo_cohort()

    # --- 10,000,000 records: refused out loud, naming the limit --------------------------------
    j.nav("Generate")
    j.see("Model card")
    records = page.get_by_label("Records", exact=True)
    records.fill("10000000")
    j.button("Generate")
    j.see("is over the limit")
    refusal = page.locator('[data-testid="stAlert"]', has_text="is over the limit").first
    assert f"at most {MAX_RECORDS:,} records per run" in refusal.inner_text()
    assert page.get_by_text("Synthetic sets in this session").count() == 0
    refusal.scroll_into_view_if_needed()
    j.shot("ten-million-refused")

    # --- a training with a horizon, stopped early -----------------------------------------------
    page.get_by_text("Train a model on the session cohort").first.click()
    j.idle()
    steps = page.get_by_role("spinbutton", name="Training steps")
    steps.fill("50000")
    steps.press("Enter")
    j.idle()
    j.choose("Network size", "small")
    name = page.get_by_role("textbox", name="Model name")
    name.fill(NAME)
    name.press("Enter")
    j.idle()
    j.shot("training-form")
    page.get_by_role("button", name="Start training").first.click()
    # the rate and the time left, from the first steps; before them the encoding of the cohort
    # and torch's first optimiser (a one-off import) can take minutes on a loaded 2-core server
    page.get_by_text("steps/s").first.wait_for(timeout=LONG_MS)
    j.see("left at this rate")
    page.get_by_text("steps/s").first.scroll_into_view_if_needed()
    j.shot("training-rate-and-eta")
    page.get_by_role("button", name="Stop training").first.click()
    page.get_by_text("Partial model").first.wait_for(timeout=LONG_MS)  # after check and save
    j.idle()
    page.get_by_text("Partial model").first.scroll_into_view_if_needed()
    j.shot("stopped-partial")
    partial = page.locator('[data-testid="stAlert"]', has_text="Partial model").first.inner_text()
    assert "its training was stopped at step" in partial and "of 50,000" in partial

    j.nav("Models")
    j.see("Stored models")
    j.see("Partial model")
    page.get_by_text("Partial model").first.scroll_into_view_if_needed()
    j.shot("models-page-partial")
    context.close()
    scan_server(server, demo_cohort())
