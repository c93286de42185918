"""Models page and the store through AppTest: a model written into the store by the command line
is offered in the Generate page without code changes; the page lists it with its card, downloads
it, deletes it after a confirmation, takes the downloaded file back and refuses a tampered one."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from core.checkpoints import WEIGHTS_FILE
from core.ehrdiff.train import TrainConfig, train_ehrdiff
from core.store import ModelStore
from tests.app.pages import open_page
from tests.core.ehrdiff.test_pipeline import code_table


@pytest.fixture
def stored(release_state):
    rng = np.random.default_rng(0)
    model = train_ehrdiff(
        code_table(rng.random((200, 2)) < 0.3),
        TrainConfig(units=(16,), embed_dim=8, steps=5, batch_size=32),
        model_id="cli-trained",
        device="cpu",
    ).model
    # what `python -m core.ehrdiff.train ... --out "$CSS_MODEL_ROOT/cli-trained"` writes
    model.save(
        release_state / "models" / "cli-trained",
        data_card={"source": "toy codes", "cohort fingerprint": "f" * 64, "trained by": "cli:test"},
        training_command="python -m core.ehrdiff.train --out ...",
        metrics={"final_loss": 0.5},
    )
    return ModelStore()


def test_a_cli_trained_model_in_the_store_is_offered_for_generation(stored):
    at = open_page("pages/2_Generate.py")
    assert "cli-trained (stored)" in at.selectbox(key="gen_model").options


def test_list_download_delete_upload_and_refuse_a_tampered_file(stored):
    at = open_page("pages/5_Models.py")
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "trained by" in d.value.columns)
    row = table.set_index("name").loc["cli-trained"]
    assert row["state"] == "verified" and row["trained by"] == "cli:test"
    assert row["trained on"].startswith("toy codes ffffffffffff")
    assert "Download model (.zip)" in {d.label for d in at.get("download_button")}
    data = stored.export_zip("cli-trained")

    at.button(key="models_delete").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    assert [m.name for m in stored.list()] == ["cli-trained"]  # not before the confirmation
    at.button(key="models_delete_yes").click().run()
    assert stored.list() == []

    at.file_uploader(key="models_upload").set_value(("m.zip", data, "application/zip")).run()
    assert any("verified" in s.value for s in at.success)
    assert [m.name for m in stored.list()] == ["cli-trained"]

    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n in src.namelist():
            body = src.read(n)
            zf.writestr(n, body[:-1] + b"\x01" if n == WEIGHTS_FILE else body)
    at.file_uploader(key="models_upload").set_value(("bad.zip", buf.getvalue(), "application/zip"))
    at.run()
    assert any("does not match its manifest" in e.value for e in at.error)
    assert len(stored.list()) == 1


def test_a_stored_forecaster_is_offered_and_loads_on_the_cxr_page(release_state):
    import shutil

    from tests.app.pages import ROOT

    store = release_state / "models"
    shutil.copytree(ROOT / "checkpoints" / "ddlcxr-hannover-64", store / "my cxr")
    shutil.copytree(ROOT / "checkpoints" / "cxr-vae-64", store / "cxr-vae-64")  # its VAE, beside it
    at = open_page("pages/4_CXR_Forecast.py")
    box = at.selectbox(key="cxr_model")
    assert "my cxr (stored)" in box.options
    box.set_value("my cxr (stored)").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Stored model `my cxr`" in c.value for c in at.caption)


def test_the_card_of_a_dp_trained_model_states_its_guarantee(release_state):
    from core.ehrdiff.dp import DPConfig

    table = code_table(np.random.default_rng(0).random((100, 2)) < 0.3)
    config = TrainConfig(units=(8,), embed_dim=4, steps=3, batch_size=20, dp=DPConfig(4.0))
    result = train_ehrdiff(table, config, device="cpu", patient_ids=table.record_ids)
    result.model.save(
        release_state / "models" / "dp-trained",
        data_card={"source": "toy", "differential_privacy": result.privacy.card()},
        training_command="python -m core.ehrdiff.train --dp-epsilon 4 ...",
        metrics={"final_loss": 0.5},
    )
    at = open_page("pages/5_Models.py")
    assert not at.exception and not at.error
    stated = [m.value for m in at.markdown if "Trained with differential privacy" in m.value]
    assert stated and "per record (one record per patient)" in stated[0]
    assert f"{result.privacy.epsilon:.3g}" in stated[0] and "RDP accountant" in stated[0]


def test_the_card_shows_the_offline_audits_recorded_in_the_manifest(stored, release_state):
    from core.audit.run import record_in_manifest

    audit = {"method": "canary audit", "epsilon_lower_bound": 0.0, "canaries": 40,
             "guesses": 8, "correct": 5, "auroc": 0.5, "auroc_ci": [0.3, 0.7], "trained_with": "its own",
             "date": "2026-12-04"}  # fmt: skip
    record_in_manifest(release_state / "models" / "cli-trained", "canaries", audit)
    at = open_page("pages/5_Models.py")
    assert not at.exception and not at.error
    tables = [t.value.reset_index() for t in at.table if "trained with" in t.value.columns]
    # the stored model's card (the shipped models' cards show their own audits above it)
    (row,) = [
        r
        for t in tables
        for _, r in t.iterrows()
        if r["size"] == "40 canaries; 5 of 8 guesses right"
    ]
    assert row["audit"] == "canary audit" and row["ε lower bound (95%)"] == "0.00"
    assert row["AUROC (95% CI)"] == "0.500 (0.300-0.700)"
    metrics = next(
        t.value for t in at.table if "value" in t.value.columns and "final loss" in t.value.index
    )
    assert "audits" not in metrics.index  # its own table, not a line of the metrics
