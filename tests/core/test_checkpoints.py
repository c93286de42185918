import json
import pickle

import pytest
import torch

from core.checkpoints import Manifest, load_checkpoint, save_checkpoint, scan_checkpoints
from core.errors import CheckpointError


@pytest.fixture
def saved(tmp_path):
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}
    manifest = save_checkpoint(
        tmp_path / "toy",
        tensors,
        Manifest(
            model_id="toy", family="ehrdiff", config={"dim": 3}, training_command="python -m x"
        ),
    )
    return tmp_path / "toy", tensors, manifest


def test_round_trip(saved):
    folder, tensors, manifest = saved
    loaded, back = load_checkpoint(folder, family="ehrdiff")
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    assert back.sha256 == manifest.sha256 and len(back.sha256) == 64 and back.config == {"dim": 3}


def test_tampered_weights_are_refused(saved):
    folder, _, _ = saved
    raw = bytearray((folder / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        load_checkpoint(folder)
    assert not scan_checkpoints(folder.parent)[0].ok


def test_pickle_is_never_loaded(saved, tmp_path):
    folder, _, _ = saved
    evil = pickle.dumps({"w": torch.ones(1)})
    (folder / "model.safetensors").write_bytes(evil)
    manifest = json.loads((folder / "manifest.json").read_text())
    import hashlib

    manifest["sha256"] = hashlib.sha256(evil).hexdigest()  # hash matches, format does not
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(folder)


def test_wrong_family_version_and_missing_manifest(saved):
    folder, _, _ = saved
    with pytest.raises(CheckpointError, match="is a 'ehrdiff' model, expected 'flexgen'"):
        load_checkpoint(folder, family="flexgen")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        load_checkpoint(folder)


def test_scan_reports_good_checkpoints(saved):
    folder, _, _ = saved
    [status] = scan_checkpoints(folder.parent)
    assert status.ok and status.folder == "toy" and "verified" in status.detail


def _save(tmp_path, **fields):
    base = {"model_id": "toy", "family": "ehrdiff", "config": {"dim": 3}}
    return save_checkpoint(tmp_path / "toy", {"w": torch.ones(2)}, Manifest(**(base | fields)))


def test_a_manifest_holding_training_data_is_refused(tmp_path):
    """The guard under every writer: long strings and data reprs anywhere in the manifest."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        {"id": ["REC-123457", "REC-123464", "REC-123471"], "hr": [91.25, 77.5, 102.75]}
    )
    leaks = {
        "a table's repr": {"training_command": f"page: {frame}"},
        "an array's repr": {"training_command": repr(np.array([91.25, 77.5]))},
        "a dict of them": {"data_card": {"table": str({"record_ids": frame["id"].to_numpy()})}},
        "2,001 characters": {"metrics": {"note": "x" * 2001}},
        "a nested list": {"config": {"dim": 3, "notes": ["ok", str(frame["hr"])]}},
    }  # fmt: skip
    for what, fields in leaks.items():
        with pytest.raises(CheckpointError, match="refused") as exc:
            _save(tmp_path, **fields)
        assert "REC-" not in str(exc.value), what  # the message names the field, not the data
        assert not (tmp_path / "toy").exists(), what
    assert _save(tmp_path, training_command="python -m core.ehrdiff.train " + "x" * 1900).sha256
