"""Prior-anchored sampling, residual targets, thresholding, pseudo-pairs and cross-validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.cxr.augment import ViewChange, random_views
from core.cxr.crossval import crossvalidate, ehr_control, verdict
from core.cxr.data import patient_folds
from core.cxr.diffusion import (
    DiffusionConfig,
    SamplerConfig,
)
from core.cxr.ehr_encoder import EHREncoderConfig
from core.cxr.ehr_window import EHRVocabulary
from core.cxr.evaluate import CARRY, CEILING, shuffled_partners, summarise
from core.cxr.latents import pseudo_pair_latents
from core.cxr.outcomes import outcome_table
from core.cxr.pipeline import CXRAutoencoder, DDLCXRForecaster, ForecastSettings
from core.cxr.train_forecaster import ForecasterConfig, ForecasterTrainConfig, train_forecaster
from core.cxr.vae import CXRVAE
from core.device import make_generator
from core.errors import ConfigError
from core.metrics.bootstrap import cluster_resamples, percentile_ci
from core.metrics.images import ssim
from tests.core.cxr.fixtures import phantom
from tests.core.cxr.test_models import TINY_UNET, TINY_VAE, VOCAB, _tiny_pairs

ENC = EHREncoderConfig(n_variables=2, d_model=16, n_heads=2, n_layers=1)


def test_sampler_and_target_configs_are_checked() -> None:
    with pytest.raises(ConfigError, match="target"):
        DiffusionConfig(target="image")
    with pytest.raises(ConfigError, match="anchor"):
        SamplerConfig(anchor="middle")
    cfg = SamplerConfig(anchor="prior", change_rms=(0.3, 0.05))
    assert SamplerConfig.from_json(cfg.to_json()) == cfg
    assert cfg.expected_change(240.0) > cfg.expected_change(24.0)


def test_random_views_are_seeded_bounded_and_identity_without_change() -> None:
    imgs = torch.as_tensor(np.stack([phantom(64, seed=s) for s in range(3)]))
    a = random_views(imgs, 32, make_generator(0))
    b = random_views(imgs, 32, make_generator(0))
    c = random_views(imgs, 32, make_generator(1))
    assert a.shape == (3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    still = random_views(imgs, 32, make_generator(0), ViewChange(0, 0, 0, 1.0, 0, 0))
    expected = F.interpolate(imgs[:, None], size=(32, 32), mode="area")[:, 0]
    assert torch.allclose(still, expected, atol=1e-5)


def test_patient_folds_partition_patients_independent_of_order() -> None:
    ids = [f"p{i}" for i in range(11)]
    folds = patient_folds(ids, 5, seed=0)
    assert len(folds) == 5 and set().union(*folds) == set(ids)
    assert sum(len(f) for f in folds) == 11 and min(len(f) for f in folds) >= 2
    assert patient_folds(ids[::-1] + ids, 5, seed=0) == folds
    with pytest.raises(ValueError):
        patient_folds(ids, 1, seed=0)


def test_cluster_bootstrap_resamples_whole_patients() -> None:
    clusters = np.array(["a"] * 50 + ["b"] * 50)
    values = np.array([0.0] * 50 + [1.0] * 50)
    lo, hi = percentile_ci(lambda r: values[r].mean(), cluster_resamples(clusters, 400, 0))
    # two patients: a resample is all-a, all-b or mixed, so the interval spans 0..1
    assert lo == 0.0 and hi == 1.0
    constant = np.ones(100)
    assert percentile_ci(lambda r: constant[r].mean(), cluster_resamples(clusters, 50)) == (1, 1)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("anchor")
    torch.manual_seed(0)
    ae = CXRAutoencoder(CXRVAE(TINY_VAE).eval(), "pad", 1.0)
    pairs = _tiny_pairs(tmp, n_patients=6)
    cfg = ForecasterTrainConfig(steps=4, batch_size=4, ramp_steps=2)
    inits = {}
    for target in ("later", "residual"):
        config = ForecasterConfig(
            ENC, TINY_UNET, DiffusionConfig(target=target), cfg, {"anchor": "prior"}
        )
        inits[target] = train_forecaster(pairs, ae, VOCAB, config, device="cpu").model
    return tmp, ae, pairs, inits


@pytest.mark.slow
def test_residual_target_scale_and_untrained_prior_anchored_forecast_keeps_the_prior(
    tiny_setup,
) -> None:
    _, ae, pairs, inits = tiny_setup
    res = inits["residual"]
    assert res.diffusion.target == "residual" and res.diffusion.residual_scale > 0
    assert res.sampler.anchor == "prior" and res.sampler.x0_bound > 0
    # a zero-output denoiser started at a tiny noise level predicts "no change"
    torch.nn.init.zeros_(res.unet.conv_out.weight)
    torch.nn.init.zeros_(res.unet.conv_out.bias)
    res.sampler = replace(res.sampler, change_rms=(1e-3, 0.0), strength=1.0)
    prior = phantom(64, seed=3)
    fc = res.forecast(prior, None, ForecastSettings(30.0, 2, 5, eta=0.0))
    recon = ae.decode(ae.encode(ae.prepare(prior)[None]))[0]
    assert ssim(fc.mean, recon) > 0.99
    noisy = res.forecast(prior, None, ForecastSettings(30.0, 2, 5, anchor="noise"))
    assert ssim(noisy.mean, recon) < ssim(fc.mean, recon)
    with pytest.raises(ConfigError, match="Anchor"):
        res.forecast(prior, None, ForecastSettings(30.0, 1, 2, anchor="middle"))


def test_sampler_survives_save_and_load(tiny_setup) -> None:
    tmp, ae, _, inits = tiny_setup
    vae_manifest = ae.save(tmp / "vae")
    inits["later"].save(tmp / "fc", tmp / "vae", vae_manifest.sha256)
    loaded = DDLCXRForecaster.load(tmp / "fc")
    assert loaded.sampler == inits["later"].sampler
    assert loaded.diffusion == inits["later"].diffusion
    assert loaded.start_step(24.0) <= loaded.start_step(500.0)


def test_pseudo_pairs_have_no_ehr_and_gaps_in_range(tiny_setup, tmp_path: Path) -> None:
    _, ae, pairs, _ = tiny_setup
    paths = sorted({p.prior for p in pairs})[:3]
    data = pseudo_pair_latents(
        paths, ae, VOCAB, 8, views_per_image=2, gap_range_hours=(24.0, 96.0), seed=0
    )
    assert len(data) == 6 and not data.has_ehr.any()
    assert data.gaps.min() >= 24.0 and data.gaps.max() <= 96.0
    assert not torch.allclose(data.z0, data.z1)


@pytest.mark.slow
def test_crossvalidation_holds_every_patient_out_once(tiny_setup, tmp_path: Path) -> None:
    _, ae, pairs, inits = tiny_setup
    folds = patient_folds([p.patient_id for p in pairs], 3, seed=0)
    cfg = ForecasterTrainConfig(steps=2, batch_size=4, ramp_steps=1)

    def run():
        return crossvalidate(
            pairs, ae, inits, folds, cfg, samples=2, steps=2, seed=0, work=tmp_path,
            variables=VOCAB.variables,
        )  # fmt: skip

    rows = run()
    carry = rows[rows["method"] == CARRY]
    assert sorted(carry["pair"]) == list(range(len(pairs)))  # once each, not once per target
    assert (rows["method"] == CEILING).sum() == len(pairs)
    for k, fold in enumerate(folds):
        assert set(rows.loc[rows["fold"] == k, "patient"]) == fold
    assert {"(a) noise start", "(c) residual, prior start, shuffled EHR"} <= set(rows["method"])
    again = run()  # from the per-fold cache
    assert np.allclose(again["ssim"], rows["ssim"])
    table = summarise(rows, n_boot=20, fd_boot=5)
    pooled = table[(table["gap"] == "all") & (table["method"] == CARRY)].iloc[0]
    assert pooled["L2 / carry"] == pytest.approx(1.0) and pooled["pairs"] == len(pairs)
    control = ehr_control(rows, n_boot=20)
    assert set(control["control"]) == {
        "(b) prior start, shuffled EHR",
        "(b) prior start, no EHR",
        "(c) residual, prior start, shuffled EHR",
        "(c) residual, prior start, no EHR",
    }
    said = verdict(table, control, "(c) residual, prior start", len(pairs), 6, 3)
    assert "the prior carried forward" in said["verdict"] and "labs" in said["verdict"]
    assert said["validated_on"].startswith(f"{len(pairs)} image pairs of 6 patients")
    fold_of = {pid: k for k, f in enumerate(folds) for pid in f}
    out = outcome_table(rows, pairs, "(b) prior start", VOCAB.variables, fold_of, n_boot=20)
    assert set(out["outcome"]) == {"icu_7d", "death"}
    assert (out["features"] == "(not estimable)").all()  # the tiny pairs carry no outcomes


def test_shuffled_partners_are_other_patients(tiny_setup) -> None:
    _, _, pairs, _ = tiny_setup
    partners = shuffled_partners(pairs)
    assert all(pairs[j].patient_id != p.patient_id for p, j in zip(pairs, partners, strict=True))


def _fake_hannover(root: Path, n_patients: int = 6) -> None:
    """A Hannover-layout folder (data.csv + png/) of phantoms, with labs and outcomes."""
    import pandas as pd
    from PIL import Image

    from core.cxr.data import HANNOVER_LABS

    (root / "png").mkdir(parents=True)
    rows = []
    for p in range(n_patients):
        for k, day in enumerate((-6, -3, 0)):
            image_id = f"im{p}{k}"
            Image.fromarray(
                (phantom(40, seed=p * 7 + k, opacity=0.1 * k) * 255).astype("uint8")
            ).save(root / "png" / f"{image_id}.png")
            row = {
                "patient_id": f"pt{p}",
                "image_id": image_id,
                "admission_offset": day,
                "icu_admission_offset": day,
                "icu_release_offset": 3 + 6 * (p % 2) - day,
                "death_offset": None,
            }
            for i, lab in enumerate(HANNOVER_LABS):
                row[f"{lab}_offset"] = 0.0
                row[f"{lab}_val"] = float(10 + i + p + k)
            rows.append(row)
    pd.DataFrame(rows).to_csv(root / "data.csv", index=False)


@pytest.mark.slow
def test_crossvalidation_command_writes_tables_and_a_verdict(tiny_setup, tmp_path: Path) -> None:
    import json

    from core.cxr.evaluate import main

    _, ae, _, _ = tiny_setup
    root = tmp_path / "hannover"
    _fake_hannover(root, n_patients=10)
    vae_manifest = ae.save(tmp_path / "vae")
    from core.cxr.data import HANNOVER_LABS

    vocab = EHRVocabulary.fit([], HANNOVER_LABS)
    enc = EHREncoderConfig(n_variables=len(HANNOVER_LABS), d_model=16, n_heads=2, n_layers=1)
    args = []
    for target in ("later", "residual"):
        data = pseudo_pair_latents(
            sorted((root / "png").glob("*.png"))[:4], ae, vocab, 8,
            views_per_image=1, gap_range_hours=(24.0, 200.0), seed=0,
        )  # fmt: skip
        config = ForecasterConfig(
            enc,
            TINY_UNET,
            DiffusionConfig(target=target),
            ForecasterTrainConfig(steps=2, batch_size=4),
        )
        model = train_forecaster(data, ae, vocab, config, device="cpu").model
        model.save(tmp_path / f"pre-{target}", tmp_path / "vae", vae_manifest.sha256)
        args += ["--init", f"{target}=" + str(tmp_path / f"pre-{target}")]
    out, js = tmp_path / "cv.md", tmp_path / "cv.json"
    code = main(
        ["--folds", "3", "--hannover-root", str(root), "--samples", "1", "--steps", "2",
         "--out", str(out), "--json", str(js), "--vae", str(tmp_path / "vae"), *args,
         "--train-steps", "2", "--n-boot", "20", "--work", str(tmp_path / "work")]
    )  # fmt: skip
    assert code == 0
    text = out.read_text()
    for heading in ("## Forecast quality", "## EHR control", "## Outcome prediction", "Verdict"):
        assert heading in text
    saved = json.loads(js.read_text())
    assert saved["crossvalidation"]["validated_on"].startswith("20 image pairs of 10 patients")
    icu = [r for r in saved["outcomes"] if r["outcome"] == "icu_7d"]
    assert {r["features"] for r in icu} >= {"last CXR + labs", "last CXR + forecast + labs"}
