"""Issue 28 in the app: train a tiny model in the Generate page on an uploaded cohort, generate
from it, review, release, and take every download the pages offer (report, metrics, released set
and manifest, the model zip); then the artifact scan finds none of the cohort's record ids or
rows of values in any file written: the store, the state folder, the downloads, the log."""

from __future__ import annotations

import logging
import time

import pytest
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from tests.app.pages import open_page
from tests.artifact_scan import TrainingCohort, assert_no_patient_data, scan, toy_table

pytestmark = pytest.mark.slow  # about 30 s on two shared cores


@pytest.fixture
def downloads(monkeypatch):
    """Every download button rendered, by label: its latest data (deferred data as the callable,
    called only at the end, as a click would)."""
    offered: dict[str, object] = {}
    original = DeltaGenerator.download_button

    def capture(self, label, data, *args, **kwargs):
        offered[label] = data
        return original(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", capture)
    monkeypatch.setattr(st, "download_button", lambda *a, **k: capture(st._main, *a, **k))
    return offered


@pytest.fixture
def server_log(tmp_path):
    """The app's log records (INFO and up) in a file, as a deployment keeps them."""
    path = tmp_path / "app.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield path
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


def test_train_review_release_export_leaves_no_patient_data(
    release_state, downloads, server_log, tmp_path
):
    table = toy_table(n=300, seed=28)
    cohort = TrainingCohort.from_frame(table, "record_id")
    upload = table.to_csv(index=False).encode()
    # the known answer first: the uploaded file itself is caught
    (tmp_path / "upload.csv").write_bytes(upload)
    assert {h.kind for h in scan([tmp_path / "upload.csv"], cohort).hits} == {"record id", "row"}

    at = open_page("pages/1_Cohort.py", timeout=300)
    at.radio(key="cohort_source_mode").set_value("Upload").run()
    at.selectbox(key="cohort_format").set_value("wide_table").run()
    at.text_input(key="opt_wide_id").set_value("record_id")
    at.text_input(key="opt_wide_label").set_value("death")
    at.file_uploader(key="upload_wide_table_table").set_value(
        ("ward_7.csv", upload, "text/csv")
    ).run()
    next(b for b in at.button if b.label == "Load cohort").click().run()
    assert not at.exception and not at.error

    at.switch_page("pages/2_Generate.py").run()
    at.number_input(key="train_steps").set_value(100)
    at.selectbox(key="train_size").set_value("small")
    next(b for b in at.button if b.label == "Start training").click().run()
    job = at.session_state["css.train_job"]
    deadline = time.time() + 180
    while job.running and time.time() < deadline:
        time.sleep(0.5)
    at.run()
    assert not job.running and job.error is None
    at.run()
    stored = f"{job.note} (stored)"
    at.selectbox(key="gen_model").set_value(stored).run()
    at.number_input(key="gen_n").set_value(240)
    at.number_input(key="gen_steps").set_value(4)
    at.text_input(key="gen_name").set_value("ward set")
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception and not at.error

    at.switch_page("pages/3_Review.py").run()
    at.multiselect(key="review_sets").set_value(["ward set"]).run()
    at.number_input(key="review_boot").set_value(20)
    at.button(key="review_run").click().run()
    assert not at.exception and not at.error
    if any(c.key == "gate_override" for c in at.checkbox):
        at.checkbox(key="gate_override").check().run()
        at.text_input(key="gate_reason").set_value("artifact scan journey").run()
    at.button(key="gate_release").click().run()
    assert not at.exception and not at.error

    at.switch_page("pages/5_Models.py").run()
    at.selectbox(key="models_pick").set_value(job.note).run()
    assert not at.exception and not at.error
    # the card shows the training command as a code block
    command = next(c.value for c in at.code if c.value.startswith("python -m core."))
    assert command.startswith("python -m core.ehrdiff.train --cohort wide_table")
    assert "--input table=ward_7.csv" in command and "trained in the Generate page" in command
    at.switch_page("pages/6_Ledger.py").run()
    assert not at.exception

    wanted = {
        "Download HTML report",
        "Download metrics (JSON)",
        "Download metrics (CSV)",
        "Download signed release manifest (JSON)",
        "Download synthetic set",
        "Download model (.zip)",
    }
    assert wanted <= set(downloads), sorted(downloads)
    folder = tmp_path / "downloads"
    folder.mkdir()
    for k, (label, data) in enumerate(downloads.items()):
        data = data() if callable(data) else data
        (folder / f"{k:02d}-{label.replace(' ', '_')}").write_bytes(
            data.encode() if isinstance(data, str) else data
        )
    manifest = release_state / "models" / job.note / "manifest.json"
    print(f"manifest of the model trained in the page: {manifest.stat().st_size:,} bytes")
    result = assert_no_patient_data([release_state, folder, server_log], cohort)
    print(f"artifact scan: {result.files} files, {len(result.skipped)} skipped, no hit")
    assert (release_state / "ledger.sqlite3").is_file() and server_log.stat().st_size > 0
