"""The model store: models found by their manifests and verified, a round trip through one file,
tampered or foreign files refused, concurrent writers leaving a consistent store, the command
line doing what the page does."""

from __future__ import annotations

import io
import threading
import zipfile

import numpy as np
import pytest

from core.checkpoints import LOCKS, MANIFEST_FILE, WEIGHTS_FILE
from core.ehrdiff.train import TrainConfig, train_ehrdiff
from core.errors import ConfigError
from core.loading import LOADERS, load_model
from core.store import ModelStore, check_name, default_root, safe_name
from core.store.__main__ import main as store_main
from tests.core.ehrdiff.test_pipeline import code_table

FAMILIES = set(LOADERS)
TINY = TrainConfig(units=(16,), embed_dim=8, steps=5, batch_size=32)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    return train_ehrdiff(code_table(rng.random((200, 2)) < 0.3), TINY, device="cpu").model


def save(model, store: ModelStore, name: str):
    return store.save(
        lambda folder: model.save(
            folder, data_card={"trained by": "test"}, training_command="t", metrics={}
        ),
        name,
    )


def test_default_root_follows_the_environment(release_state, monkeypatch, tmp_path):
    assert default_root() == release_state / "models"
    monkeypatch.setenv("CSS_MODEL_ROOT", str(tmp_path / "m"))
    assert default_root() == tmp_path / "m"


def test_a_saved_model_is_listed_verified_and_loads(model, tmp_path):
    store = ModelStore(tmp_path)
    save(model, store, "EHRDiff on toy")
    (listed,) = store.list(family=model.family)
    assert listed.ok and listed.name == "EHRDiff on toy" and listed.size_bytes > 0
    assert load_model(listed.folder).family == model.family
    assert store.free_name("EHRDiff on toy") == "EHRDiff on toy (2)"
    with pytest.raises(ConfigError, match="already in the store"):
        store.folder_for("EHRDiff on toy")
    with pytest.raises(ConfigError, match="cannot name a model"):
        store.folder_for("../escape")


def test_export_import_round_trip_and_tampered_or_foreign_files_refused(model, tmp_path):
    store = ModelStore(tmp_path / "a")
    save(model, store, "m")
    data = store.export_zip("m")
    other = ModelStore(tmp_path / "b")
    back = other.import_zip(data, FAMILIES)
    assert back.ok and back.manifest.sha256 == store.get("m").manifest.sha256

    def rezip(change) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(data))
        files = {n: src.read(n) for n in src.namelist()}
        change(files)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n, b in files.items():
                zf.writestr(n, b)
        return buf.getvalue()

    flipped = rezip(lambda f: f.update({WEIGHTS_FILE: f[WEIGHTS_FILE][:-1] + b"\x00"}))
    with pytest.raises(ConfigError, match="does not match its manifest"):
        other.import_zip(flipped, FAMILIES)
    alien = rezip(
        lambda f: f.update({MANIFEST_FILE: f[MANIFEST_FILE].replace(b"ehrdiff", b"alien")})
    )
    with pytest.raises(ConfigError, match="does not know"):
        other.import_zip(alien, FAMILIES)
    extra = rezip(lambda f: f.update({"../../evil.sh": b"rm -rf /"}))
    with pytest.raises(ConfigError, match="must hold"):
        other.import_zip(extra, FAMILIES)
    with pytest.raises(ConfigError, match="Not a model file"):
        other.import_zip(b"not a zip", FAMILIES)
    assert [m.name for m in other.list()] == [back.name]  # nothing half-imported is listed


def test_two_writers_at_once_leave_a_consistent_store(model, tmp_path):
    store = ModelStore(tmp_path)
    errors = []

    def write(k: int) -> None:
        try:
            for _ in range(4):  # both writers ask for the same names at the same time
                saved = save(model, store, "shared")
                store.import_zip(store.export_zip(saved.name), FAMILIES, "copied")
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    listed = store.list()
    assert len(listed) == 16 and all(m.ok for m in listed)  # none lost, none replaced
    assert {m.name for m in listed} >= {"shared", "shared (8)", "copied", "copied (8)"}
    # no leftovers: only the per-name lock files' folder stays hidden beside the models
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [LOCKS]


def test_a_model_the_training_command_writes_into_the_store_is_listed(model, tmp_path):
    store = ModelStore(tmp_path)
    model.save(tmp_path / "cli model", data_card={}, training_command="cli", metrics={})
    assert [m.name for m in store.list(model.family)] == ["cli model"]


def test_command_line_list_verify_export_import_rename_delete(model, tmp_path, capsys):
    store = ModelStore(tmp_path / "s")
    save(model, store, "m")
    root = ["--root", str(store.root)]
    assert store_main([*root, "list"]) == 0 and "verified" in capsys.readouterr().out
    assert store_main([*root, "verify", "m"]) == 0
    out = tmp_path / "m.zip"
    assert store_main([*root, "export", "m", str(out)]) == 0
    assert store_main([*root, "import", str(out), "--name", "m2"]) == 0
    assert store_main([*root, "rename", "m2", "m3"]) == 0
    assert store_main([*root, "delete", "m3"]) == 2  # needs --yes
    assert store_main([*root, "delete", "m3", "--yes"]) == 0
    assert [m.name for m in store.list()] == ["m"]
    (store.root / "m" / WEIGHTS_FILE).write_bytes(b"tampered")
    assert store_main([*root, "verify", "m"]) == 1
    assert "does not match" in capsys.readouterr().out


def test_command_line_generates_from_a_stored_model_by_name(model, tmp_path, capsys):
    import pandas as pd

    store = ModelStore(tmp_path / "s")
    save(model, store, "m")
    out = tmp_path / "synthetic.parquet"
    root = ["--root", str(store.root)]
    assert store_main([*root, "generate", "m", "--n", "50", "--seed", "1", "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 50 and {"A", "B"} <= set(frame.columns)
    assert store_main([*root, "generate", "nope", "--n", "5", "--out", str(out)]) == 1


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        (
            "EHRPD on MIMIC visits (ADMISSIONS.csv.gz, 3digit)",
            "EHRPD on MIMIC visits (ADMISSIONS.csv.gz 3digit)",
        ),
        ("EHRDiff on Demo: 2,000 stays", "EHRDiff on Demo 2 000 stays"),
        ("../../etc/passwd", "etc passwd"),
        ("Ärzte / Station 3.", "Arzte Station 3"),
        (",,,", "model"),
        ("x" * 150, "x" * 90),
    ],
)
def test_safe_name_makes_any_text_a_name_the_store_accepts(text, safe):
    assert safe_name(text) == safe
    assert check_name(safe_name(text)) == safe  # never refused
    with pytest.raises(ConfigError, match="cannot name a model"):
        check_name(text) if text != "x" * 150 else check_name(text + ",")
