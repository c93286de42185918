"""Tiny-config tests of the DDL-CXR parts: shapes, finiteness, seeds, losses, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.checkpoints import WEIGHTS_FILE
from core.cxr.data import PairRecord
from core.cxr.diffusion import DiffusionConfig, perturb_context, ramp
from core.cxr.ehr_encoder import EHREncoder, EHREncoderConfig
from core.cxr.ehr_window import EHRVocabulary, tokens_from_windows, window_from_frame
from core.cxr.pipeline import CXRAutoencoder, DDLCXRForecaster, ForecastSettings
from core.cxr.train_forecaster import ForecasterConfig, ForecasterTrainConfig, train_forecaster
from core.cxr.unet import LatentUNet, UNetConfig
from core.cxr.vae import CXRVAE, CXRVAEConfig
from core.device import make_generator
from core.errors import CheckpointError, ConfigError
from tests.core.cxr.fixtures import phantom

TINY_VAE = CXRVAEConfig(image_size=32, base_channels=8, channel_mult=(1, 2), latent_channels=4)
TINY_UNET = UNetConfig(
    latent_channels=4, base_channels=16, channel_mult=(1, 2), context_dim=16, n_heads=2
)
VOCAB = EHRVocabulary(("crp", "po2"), (50.0, 70.0), (80.0, 30.0))


def tiny_encoder() -> EHREncoder:
    return EHREncoder(EHREncoderConfig(n_variables=2, d_model=16, n_heads=2, n_layers=1))


def window(rows: list[tuple[float, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["hours", "variable", "value"])


def test_vae_shapes_losses_and_label_head() -> None:
    torch.manual_seed(0)
    vae = CXRVAE(TINY_VAE)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    mean, logvar = vae.encode(x)
    assert mean.shape == logvar.shape == (3, 4, 16, 16)
    assert vae.decode(mean).shape == x.shape
    losses = vae(x, torch.tensor([[1.0], [0.0], [-1.0]]), make_generator(0))
    assert torch.isfinite(losses.total) and losses.label > 0
    unlabeled = vae(x, torch.full((3, 1), -1.0), make_generator(0))
    assert unlabeled.label == 0  # unknown labels are masked out
    with pytest.raises(ConfigError, match="divisible"):
        CXRVAE(CXRVAEConfig(image_size=36, channel_mult=(1, 2, 2, 4)))


@pytest.mark.slow
def test_vae_learns_to_reconstruct_a_phantom() -> None:
    torch.manual_seed(0)
    vae = CXRVAE(TINY_VAE)
    x = torch.as_tensor(np.stack([phantom(32, s) for s in range(4)]))[:, None] * 2 - 1
    opt = torch.optim.Adam(vae.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss = vae(x, None, make_generator(0)).l1
        first = first if first is not None else float(loss)
        opt.zero_grad()
        vae(x, None, make_generator(0)).total.backward()
        opt.step()
    assert float(vae(x, None, make_generator(0)).l1) < 0.5 * first


def test_ehr_encoder_masks_padding_and_handles_empty_windows() -> None:
    torch.manual_seed(0)
    enc = tiny_encoder().eval()
    w1 = window([(1.0, "crp", 120.0), (5.0, "po2", 60.0)])
    tokens = tokens_from_windows([w1, window([])], VOCAB, 64)
    assert tokens.mask.tolist() == [[True, True], [False, False]]
    ctx, mask, cls = enc(tokens)
    assert ctx.shape == (2, 3, 16) and mask[:, 0].all() and torch.isfinite(ctx).all()
    # padding must not change a window's encoding
    padded = tokens_from_windows(
        [w1, window([(0, "crp", 1), (1, "crp", 1), (2, "crp", 1)])], VOCAB, 64
    )
    assert torch.allclose(enc(padded)[2][0], cls[0], atol=1e-5)


def test_unet_output_shape_and_conditioning_paths() -> None:
    torch.manual_seed(0)
    unet = LatentUNet(TINY_UNET)
    torch.nn.init.normal_(unet.conv_out.weight, std=0.1)  # zero-init output would hide the wiring
    z, prior = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t, gap = torch.tensor([10, 500]), torch.tensor([24.0, 120.0])
    ctx, mask = unet.null(2)
    out = unet(z, prior, t, gap, ctx, mask)
    assert out.shape == z.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, unet(z, prior, t, gap * 4, ctx, mask))  # gap is used
    assert not torch.allclose(out, unet(z, prior * 0, t, gap, ctx, mask))  # prior is used


def test_contrastive_pieces() -> None:
    assert ramp(0, 100) == 0.0 and ramp(50, 100) == 0.5 and ramp(500, 100) == 1.0
    ctx = torch.ones(2, 3, 4)
    assert torch.equal(perturb_context(ctx, 0.0), ctx)
    moved = perturb_context(ctx, 0.5, make_generator(0))
    assert not torch.allclose(moved, ctx)


def test_ehr_window_validation() -> None:
    frame = pd.DataFrame(
        {"Hours": [5, 1, 2], "variable": ["CRP", "unknown_lab", "po2"], "value": [10, 1, "x"]}
    )
    w = window_from_frame(frame, VOCAB, "w.csv")
    assert list(w.frame["variable"]) == ["crp"]
    assert any("unknown_lab" in n for n in w.warnings)
    assert any("not finite" in n for n in w.warnings)
    with pytest.raises(Exception, match="negative hours"):
        window_from_frame(pd.DataFrame({"hours": [-1], "variable": ["crp"], "value": [1]}), VOCAB)
    wide = pd.DataFrame({"hour": [3, 0], "crp": [20, 30], "po2": [None, 80]})
    ww = window_from_frame(wide, VOCAB)
    assert ww.frame["hours"].tolist() == [0, 0, 3] and any("sorted" in n for n in ww.warnings)


def _tiny_pairs(tmp: Path, n_patients: int = 4) -> list[PairRecord]:
    from PIL import Image

    pairs = []
    for p in range(n_patients):
        paths = []
        for k in range(3):
            path = tmp / f"p{p}_{k}.png"
            Image.fromarray(
                (phantom(40, seed=p * 10 + k, opacity=0.2 * k) * 255).astype(np.uint8)
            ).save(path)
            paths.append(path)
        for k in range(2):
            w = window([(2.0, "crp", 40.0 + 30 * k), (20.0, "po2", 70.0)])
            pairs.append(PairRecord(f"p{p}", paths[k], paths[k + 1], 24.0 * (k + 1), w, p % 2))
    return pairs


@pytest.fixture(scope="module")
def tiny_forecaster(tmp_path_factory) -> tuple[Path, list[PairRecord]]:
    tmp = tmp_path_factory.mktemp("cxr")
    torch.manual_seed(0)
    ae = CXRAutoencoder(CXRVAE(TINY_VAE).eval(), "pad", 1.0)
    ae.save(tmp / "vae", data_card={"datasets": ["test phantoms"]})
    ae = CXRAutoencoder.load(tmp / "vae")
    vae_manifest = ae.manifest
    pairs = _tiny_pairs(tmp)
    config = ForecasterConfig(
        EHREncoderConfig(n_variables=2, d_model=16, n_heads=2, n_layers=1),
        TINY_UNET,
        DiffusionConfig(),
        ForecasterTrainConfig(steps=6, batch_size=4, ramp_steps=3),
    )
    seen: list[int] = []
    result = train_forecaster(pairs, ae, VOCAB, config, callback=lambda s, n, _: seen.append(s))
    model = result.model
    assert np.isfinite(result.losses).all() and seen == list(range(1, 7))
    assert not result.stopped_early
    stopped = train_forecaster(pairs, ae, VOCAB, config, should_stop=lambda: True)
    assert stopped.stopped_early and len(stopped.losses) == 0
    model.save(tmp / "forecaster", tmp / "vae", vae_manifest.sha256)
    return tmp, pairs


@pytest.mark.slow
def test_forecaster_roundtrip_and_forecast(tiny_forecaster) -> None:
    tmp, pairs = tiny_forecaster
    model = DDLCXRForecaster.load(tmp / "forecaster")
    assert model.manifest.family == "ddl-cxr"  # the manifest comes with the model
    assert model.gap_range_hours == (24.0, 48.0)
    w = window_from_frame(pairs[0].window, VOCAB)
    prior = phantom(80, seed=5)
    settings = ForecastSettings(horizon_hours=30.0, n_samples=3, steps=5, seed=7)
    seen = []
    a = model.forecast(prior, w, settings, callback=lambda i, n: seen.append(i))
    b = model.forecast(prior, w, settings)
    assert a.samples.shape == (3, 32, 32) and np.isfinite(a.samples).all()
    assert a.samples.min() >= 0 and a.samples.max() <= 1
    assert np.array_equal(a.samples, b.samples) and seen == [1, 2, 3, 4, 5]
    assert a.uncertainty.shape == a.change.shape == a.prior.shape == (32, 32)
    no_ehr = model.forecast(prior, w, ForecastSettings(30.0, 3, 5, seed=7, use_ehr=False))
    assert not np.array_equal(no_ehr.samples, a.samples)
    early = model.forecast(prior, w, ForecastSettings(horizon_hours=10.0, n_samples=1, steps=2))
    assert any("left out 1 observation" in n for n in early.notes)
    for bad, match in [
        (0.0, "more than 0"),
        (24 * 100, "beyond"),
    ]:
        with pytest.raises(ConfigError, match=match):
            model.forecast(prior, w, ForecastSettings(horizon_hours=bad, n_samples=1, steps=2))


def test_forecaster_refuses_a_swapped_vae_and_tampered_weights(tiny_forecaster) -> None:
    tmp, _ = tiny_forecaster
    import shutil

    other = tmp / "other"
    shutil.copytree(tmp / "forecaster", other / "forecaster")
    CXRAutoencoder(CXRVAE(TINY_VAE), "pad", 2.0).save(other / "vae")
    with pytest.raises(CheckpointError, match="another"):
        DDLCXRForecaster.load(other / "forecaster")
    weights = other / "forecaster" / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError, match="sha256"):
        DDLCXRForecaster.load(other / "forecaster")
