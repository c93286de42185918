"""The VAE training command end to end on a folder of tiny images: checkpoint, card, run facts."""

from pathlib import Path

import numpy as np
from PIL import Image

from core.checkpoints import read_manifest
from core.cxr.pipeline import VAE_FAMILY, CXRAutoencoder
from core.cxr.train_vae import main


def test_vae_command_writes_a_verified_checkpoint_with_its_card(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for label in ("NORMAL", "PNEUMONIA"):
        folder = tmp_path / "images" / label
        folder.mkdir(parents=True)
        for i in range(10):
            pixels = (rng.random((40, 36)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{label}_{i}.png")
    out = tmp_path / "vae"
    argv = [
        "--images", str(tmp_path / "images"), "--out", str(out), "--image-size", "32",
        "--base-channels", "8", "--channel-mult", "1,2", "--steps", "3", "--batch-size", "4",
        "--device", "cpu",
    ]  # fmt: skip
    assert main(argv) == 0
    manifest = read_manifest(out)
    assert manifest.family == VAE_FAMILY
    assert manifest.metrics["processes"] == 1 and manifest.metrics["device"] == "cpu"
    assert manifest.metrics["train_seconds"] >= 0 and 0 < manifest.metrics["validation_images"]
    assert manifest.data_card["split"] == {"holdout": 0.2, "seed": 0, "patient_level": True}
    assert manifest.training_command.startswith("python -m core.cxr.train_vae --images")
    autoencoder = CXRAutoencoder.load(out, "cpu")  # hash-verified on load
    assert autoencoder.size == 32


def test_forecaster_command_trains_on_pairs_and_states_its_run(tmp_path: Path) -> None:
    from core.cxr.pipeline import DDLCXRForecaster
    from core.cxr.train_forecaster import main as forecaster_main
    from core.cxr.train_vae import main as vae_main
    from tests.core.cxr.test_anchoring import _fake_hannover

    root = tmp_path / "hannover"
    _fake_hannover(root)
    tiny = ["--base-channels", "8", "--batch-size", "4", "--device", "cpu"]
    vae_main(["--images", str(root / "png"), "--out", str(tmp_path / "vae"), "--image-size", "32",
              "--channel-mult", "1,2", "--steps", "2", *tiny])  # fmt: skip
    out = tmp_path / "forecaster"
    argv = ["--vae", str(tmp_path / "vae"), "--hannover-root", str(root), "--out", str(out),
            "--steps", "3", "--d-model", "16", "--ehr-layers", "1", "--anchor", "prior", *tiny]  # fmt: skip
    assert forecaster_main(argv) == 0
    manifest = read_manifest(out)
    assert manifest.metrics["processes"] == 1 and manifest.metrics["device"] == "cpu"
    assert manifest.training_command.startswith("python -m core.cxr.train_forecaster --vae")
    assert manifest.data_card["split"] == {"holdout": 0.2, "seed": 0, "patient_level": True}
    model = DDLCXRForecaster.load(out)  # its VAE found beside it, by the manifest
    assert model.sampler.anchor == "prior" and model.manifest.sha256 == manifest.sha256
