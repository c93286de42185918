"""Shared AppTest steps: open a page of the app, load a shipped demo cohort."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def open_page(page: str | None = None, timeout: float = 120) -> AppTest:
    """The app run once from its landing page, then switched to ``page`` (if given)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception
    return at


def load_demo(at: AppTest, title_part: str) -> None:
    """Load the demo cohort whose title contains ``title_part`` on the Cohort page."""
    at.switch_page("pages/1_Cohort.py").run()
    at.radio(key="cohort_source_mode").set_value("Demo cohort").run()
    box = at.selectbox(key="cohort_demo")
    box.set_value(next(o for o in box.options if title_part in o)).run()
    next(b for b in at.button if b.label == "Load cohort").click().run()
    assert not at.exception and not at.error


def upload_eicu_visits(at: AppTest) -> None:
    """On the Cohort page: upload the small eICU tables of ``tests.core.data.test_visits`` as a
    visit cohort (patients with one stay kept) and load it."""
    from tests.core.data.test_visits import ADMISSION_DX, DIAGNOSIS, PATIENT

    at.radio(key="cohort_source_mode").set_value("Upload").run()
    at.selectbox(key="cohort_format").set_value("eicu_visits").run()
    at.number_input(key="opt_ev_min").set_value(1).run()
    for slot, name, data in (
        ("patient", "patient.csv", PATIENT),
        ("diagnosis", "diagnosis.csv", DIAGNOSIS),
        ("admission_dx", "admissionDx.csv", ADMISSION_DX),
    ):
        at.file_uploader(key=f"upload_eicu_visits_{slot}").set_value(
            (name, data.encode(), "text/csv")
        ).run()
    next(b for b in at.button if b.label == "Load cohort").click().run()
