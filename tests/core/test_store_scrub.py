"""Stored models written before issue 28 held their training table in the manifest: the store
scrubs them when it opens them, says so, and the model still verifies, loads and exports."""

from __future__ import annotations

import io
import json
import logging
import zipfile

import pytest

from core.checkpoints import MANIFEST_FILE, verify_checkpoint
from core.data.formats import NamedInput, load_cohort
from core.data.records import ehr_table
from core.ehrdiff.train import TrainConfig, train_ehrdiff
from core.loading import load_model
from core.store import ModelStore
from core.store.scrub import NOTE, holds_data
from tests.artifact_scan import TrainingCohort, old_leaking_command, scan, toy_table

TINY = TrainConfig(units=(16,), embed_dim=8, steps=5, batch_size=32)


@pytest.fixture(scope="module")
def table():
    return toy_table()


@pytest.fixture(scope="module")
def model(table):
    data = table.to_csv(index=False).encode()
    options = {"id_column": "record_id", "label_column": "death"}
    cohort = load_cohort("wide_table", {"table": NamedInput("ward.csv", data)}, options)
    return train_ehrdiff(ehr_table(cohort), TINY, device="cpu").model


def old_model(model, table, store: ModelStore, name: str):
    """A stored model as earlier versions wrote it: the leaking command in its manifest (the
    guard of this version refuses to write one, so it is patched in) and a card quoting it."""
    stored = store.save(
        lambda folder: model.save(folder, data_card={"source": "ward.csv"}, training_command="t", metrics={}),
        name,
    )  # fmt: skip
    path = stored.folder / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["training_command"] = old_leaking_command(table)
    path.write_text(json.dumps(raw, indent=2))
    (stored.folder / "README.md").write_text(
        f"# {name}\n\nTrained by:\n\n    {raw['training_command']}\n"
    )
    return stored.folder  # fmt: skip


def test_an_old_leaking_model_is_scrubbed_when_the_store_opens_it(model, table, tmp_path, caplog):
    store = ModelStore(tmp_path / "store")
    folder = old_model(model, table, store, "EHRDiff on ward")
    cohort = TrainingCohort.from_frame(table, "record_id")
    before = (folder / MANIFEST_FILE).stat().st_size
    assert holds_data(folder) == ["training_command"]
    assert {h.kind for h in scan([folder], cohort).hits} >= {"record id", "row"}

    with caplog.at_level(logging.WARNING, logger="core.store.scrub"):
        listed = store.get("EHRDiff on ward")
    assert listed.ok and listed.manifest.training_command == NOTE
    assert "Training data removed" in listed.note and "training_command" in listed.note
    assert "card regenerated" in listed.note
    (line,) = [r.getMessage() for r in caplog.records]
    assert "scrubbed training data from stored model EHRDiff on ward" in line
    command = len(old_leaking_command(table))
    assert (folder / MANIFEST_FILE).stat().st_size < before - command + 600
    assert scan([folder], cohort).hits == []  # manifest and card
    assert verify_checkpoint(folder).sha256 == listed.manifest.sha256  # weights untouched
    assert load_model(folder).family == "ehrdiff"
    raw = json.loads((folder / MANIFEST_FILE).read_text())
    assert raw["scrubbed"]["fields"] == ["training_command"]
    assert raw["scrubbed"]["weights_sha256_verified"] is True

    # Later openings say so again, without rewriting anything.
    mtime = (folder / MANIFEST_FILE).stat().st_mtime_ns
    assert store.get("EHRDiff on ward").note == listed.note
    assert (folder / MANIFEST_FILE).stat().st_mtime_ns == mtime
    with zipfile.ZipFile(io.BytesIO(store.export_zip("EHRDiff on ward"))) as zf:
        exported = {n: zf.read(n) for n in zf.namelist()}
    assert set(exported) == {"manifest.json", "model.safetensors", "README.md"}
    (tmp_path / "export.zip").write_bytes(store.export_zip("EHRDiff on ward"))
    assert scan([tmp_path / "export.zip"], cohort).hits == []


def test_an_old_model_file_imported_into_the_store_is_scrubbed(model, table, tmp_path):
    old = ModelStore(tmp_path / "old")
    folder = old_model(model, table, old, "m")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # a download made by an earlier version
        for f in folder.iterdir():
            zf.write(f, f.name)
    imported = ModelStore(tmp_path / "new").import_zip(buf.getvalue(), {"ehrdiff"})
    assert imported.ok and imported.manifest.training_command == NOTE and imported.note
    assert scan([tmp_path / "new"], TrainingCohort.from_frame(table, "record_id")).hits == []


def test_a_clean_model_is_left_alone(model, tmp_path):
    store = ModelStore(tmp_path)
    stored = store.save(
        lambda f: model.save(f, data_card={}, training_command="python -m x", metrics={}), "c"
    )
    mtime = (stored.folder / MANIFEST_FILE).stat().st_mtime_ns
    assert store.get("c").note == "" and store.get("c").ok
    assert (stored.folder / MANIFEST_FILE).stat().st_mtime_ns == mtime
