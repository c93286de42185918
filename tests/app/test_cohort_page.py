"""Page tests through Streamlit's AppTest: the real page script, with real uploads."""

import pytest
from streamlit.testing.v1 import AppTest

from core.data.formats import FORMATS
from tests.app.pages import open_page
from tests.conftest import EICU_DIAGNOSIS, EICU_PATIENT, shared_path

TIMEOUT = 60


def cohort_page() -> AppTest:
    at = open_page("pages/1_Cohort.py", TIMEOUT)
    if "Upload" in at.radio(key="cohort_source_mode").options:
        at.radio(key="cohort_source_mode").set_value("Upload").run()
    return at


def choose_format(at: AppTest, format_id: str) -> None:
    at.selectbox(key="cohort_format").set_value(format_id).run()


def upload(at: AppTest, format_id: str, slot: str, name: str, content: bytes) -> None:
    at.file_uploader(key=f"upload_{format_id}_{slot}").set_value(
        (name, content, "application/octet-stream")
    ).run()


def press_load(at: AppTest) -> None:
    [button] = [b for b in at.button if b.label == "Load cohort"]
    button.click().run()


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_landing_page_renders_status():
    at = open_page(timeout=TIMEOUT)
    assert at.title[0].value == "Clinical Synthesis Studio"
    assert "Upload limit: **200 MB**" in markdown_text(at)


def test_physionet_upload_shows_summary_and_split(physionet_tar, physionet_outcomes):
    at = cohort_page()
    assert "No cohort loaded yet" in at.info[0].value
    upload(at, "physionet2012", "records", "set-a.tar.gz", physionet_tar)
    upload(at, "physionet2012", "outcomes", "Outcomes-a.txt", physionet_outcomes)
    at.slider(key="split_fraction").set_value(0.35).run()
    press_load(at)
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Records"] == "3" and metrics["Patients"] == "3"
    assert metrics["In-hospital_death = died"] == "1 (33.3%)"
    assert at.session_state["css.cohort"].n_records == 3
    split = at.session_state["css.split"]
    assert len(split.train) + len(split.holdout) == 3 and len(split.holdout) == 1
    features = at.dataframe[0].value
    assert {"Age", "HR", "Urine"} <= set(features["feature"])


def test_bad_upload_shows_error_and_keeps_previous_cohort(physionet_tar):
    at = cohort_page()
    upload(at, "physionet2012", "records", "set-a.tar.gz", physionet_tar)
    press_load(at)
    before = at.session_state["css.cohort"]
    upload(at, "physionet2012", "records", "set-a.tar.gz", b"\x00\x01 not an archive " * 50)
    press_load(at)
    assert not at.exception
    assert (
        "Loading the cohort failed" in at.error[0].value
        and "not a zip, tar or tar.gz" in at.error[0].value
    )
    assert at.session_state["css.cohort"] is before  # nothing the user had is lost
    assert at.metric[0].value == "3"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"a;b\n1;2\n", "missing required column(s) 'patientunitstayid'"),
        ("patientunitstayid,icd9code\n1,caf\u00e9\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_bad_tables_give_clear_messages(content, expected):
    at = cohort_page()
    choose_format(at, "eicu_diagnosis")
    upload(at, "eicu_diagnosis", "diagnosis", "diagnosis.csv", content)
    press_load(at)
    assert not at.exception
    assert expected in at.error[0].value


def test_eicu_upload_with_patient_table():
    at = cohort_page()
    choose_format(at, "eicu_diagnosis")
    upload(at, "eicu_diagnosis", "diagnosis", "diagnosis.csv", EICU_DIAGNOSIS.encode())
    upload(at, "eicu_diagnosis", "patient", "patient.csv", EICU_PATIENT.encode())
    press_load(at)
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Records"] == "3" and metrics["Patients"] == "2"
    assert any("distinct codes" in c.value for c in at.caption)


def test_every_format_renders_its_inputs():
    at = cohort_page()
    for format_id, fmt in FORMATS.items():
        choose_format(at, format_id)
        assert not at.exception, format_id
        labels = {u.label for u in at.file_uploader}
        assert labels == {s.label for s in fmt.inputs}, format_id


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_data_from_server_folder(monkeypatch):
    root = shared_path()
    monkeypatch.setenv("CSS_DATA_ROOT", str(root))
    at = cohort_page()
    at.radio(key="cohort_source_mode").set_value("Files on this server").run()
    at.selectbox(key="server_physionet2012_records").set_value("physionet2012/set-a.tar.gz")
    at.selectbox(key="server_physionet2012_outcomes").set_value(
        "physionet2012/Outcomes-a.txt"
    ).run()
    press_load(at)
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Records"] == "4,000" and metrics["In-hospital_death = died"] == "554 (13.9%)"
