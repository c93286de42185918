"""FLEXGEN-EHR: encoding and VAE round trips, GW alignment, latent DDPM, end-to-end training."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.data.records import ehr_table
from core.diffusion import ddpm
from core.diffusion.ddpm import DDPMSchedule
from core.diffusion.guidance import classifier_free
from core.errors import CheckpointError, CohortError, ConfigError
from core.flexgen.alignment import (
    TRANSPORT_METHODS,
    AlignmentConfig,
    align,
    shared_feature_cost,
)
from core.flexgen.encoding import FlexGenEncoding, modality_presence
from core.flexgen.missing import knn_impute
from core.flexgen.networks import DenoiserConfig, LatentDenoiser
from core.flexgen.pipeline import FlexGenModel, FlexGenSettings
from core.flexgen.train import FlexGenConfig, train_flexgen
from tests.core.flexgen.toy import toy_cohort

TINY = replace(
    FlexGenConfig(),
    variant="flexgen",  # the alignment path; the default kNN variant has its own tests
    temporal_kind="cnn",
    static_latent=4,
    temporal_latent=8,
    vae_hidden=32,
    vae_epochs=4,
    vae_batch=64,
    diffusion_iters=150,
    denoiser_hidden=64,
    denoiser_blocks=2,
    alignment=AlignmentConfig(subsample=400),
)


def test_encoding_round_trip_is_exact_within_scaling() -> None:
    cohort = toy_cohort(120)
    enc = FlexGenEncoding.fit(cohort)
    x_t = enc.temporal_inputs(cohort)
    d = len(enc.temporal.variables)
    assert x_t.shape == (120, 8, 2 * d)
    back = enc.decode_temporal(x_t[..., :d], x_t[..., d:] > 0.5)
    assert np.array_equal(back.mask, cohort.temporal.mask)
    inside = cohort.temporal.mask
    # Values inside the top-coded range come back to float precision.
    lo, hi = np.nanpercentile(cohort.temporal.values, [5, 95], axis=(0, 1))
    ok = inside & (cohort.temporal.values > lo) & (cohort.temporal.values < hi)
    np.testing.assert_allclose(back.values[ok], cohort.temporal.values[ok], rtol=1e-4)
    assert np.isnan(back.values[~inside]).all()
    static = enc.decode_static(enc.static_inputs(cohort), cohort.record_ids)
    assert (static["Unit"].astype(str) == cohort.static["Unit"].astype(str)).all()
    assert (static["Male"] == cohort.static["Male"]).all()


@pytest.mark.parametrize("kind", ["lstm", "cnn"])
@pytest.mark.slow
def test_vae_learns_to_reconstruct_the_toy_cohort(kind: str) -> None:
    cohort = toy_cohort(240)
    # 300 epochs: at 80 the mask-density gap below held for seed 0 only (seeds 1, 2: about 0.06)
    cfg = replace(TINY, temporal_kind=kind, vae_epochs=300, diffusion_iters=1)
    model = train_flexgen(cohort, cfg).model
    enc = model.encoding
    x_s = torch.from_numpy(enc.static_inputs(cohort))
    x_t = torch.from_numpy(enc.temporal_inputs(cohort))
    with torch.no_grad():
        s_hat = torch.sigmoid(model.static_vae.decode(model.static_vae.encode(x_s)[0])).numpy()
        t_hat = torch.sigmoid(model.temporal_vae.decode(model.temporal_vae.encode(x_t)[0])).numpy()
    decoded = enc.decode_static(s_hat, cohort.record_ids)
    assert (decoded["Unit"].astype(str) == cohort.static["Unit"].astype(str)).mean() > 0.9
    # <= : decoded ages are whole years now (the column's precision), so the error is too.
    assert np.abs(decoded["Age"] - cohort.static["Age"]).median() <= 8.0  # range 18..95
    d = len(enc.temporal.variables)
    mask = x_t[..., d:].numpy() > 0
    err = np.abs(t_hat[..., :d] - x_t[..., :d].numpy())[mask].mean()
    spread = np.abs(x_t[..., :d].numpy()[mask] - x_t[..., :d].numpy()[mask].mean()).mean()
    assert err < 0.6 * spread, (err, spread)
    # The unit sets the heart-rate sampling density: the decoded mask probability follows it.
    p_hr = t_hat[..., d].mean(axis=1)
    unit = cohort.static["Unit"].cat.codes.to_numpy()
    assert p_hr[unit == 0].mean() > p_hr[unit == 1].mean() + 0.08  # true gap 0.4


def _planted(n: int = 300, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(5, d)) * 3
    z_t = centers[rng.integers(0, 5, n)] + rng.normal(size=(n, d))
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    z_s = z_t @ rotation + 0.05 * rng.normal(size=(n, d))
    r = rng.random(n)
    has_t, has_s = r >= 0.35, (r < 0.35) | (r >= 0.7)  # 30% paired, 35% each alone
    labels = (z_t[:, 0] > 0).astype(np.int64)
    return z_t, z_s, has_t, has_s, labels


def _relative_error(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(pred - truth) / np.linalg.norm(truth - truth.mean(axis=0)))


@pytest.mark.parametrize("method", TRANSPORT_METHODS)
def test_gw_alignment_recovers_a_planted_rotation(method: str) -> None:
    z_t, z_s, has_t, has_s, labels = _planted()
    a = align(z_t, z_s, has_t, has_s, labels, AlignmentConfig(method=method))
    assert a.label_signed and a.seconds > 0 and a.method == method
    # Known pairs: the coupling's largest entry is the true partner far above chance.
    assert a.pair_accuracy > 0.5 > 50 * a.pair_chance
    lacks_s, lacks_t = ~has_s, ~has_t
    err_s = _relative_error(a.impute_static(z_t[lacks_s], labels[lacks_s]), z_s[lacks_s])
    err_t = _relative_error(a.impute_temporal(z_s[lacks_t], labels[lacks_t]), z_t[lacks_t])
    # A random pairing imputes the other cloud's mean at best: relative error >= 1.
    shuffled = z_s[np.random.default_rng(1).permutation(len(z_s))]
    assert err_s < 0.4 and err_t < 0.4, (err_s, err_t)
    assert _relative_error(shuffled[lacks_s], z_s[lacks_s]) > 1.0


def test_gw_alignment_without_known_pairs_still_beats_random() -> None:
    z_t, z_s, has_t, has_s, labels = _planted(seed=2)
    cfg = AlignmentConfig(method="gw", seed_with_pairs=False)
    a = align(z_t, z_s, has_t, has_s, labels, cfg)
    assert _relative_error(a.impute_static(z_t[~has_s]), z_s[~has_s]) < 0.5


@pytest.mark.slow
def test_the_subsample_is_not_the_draw_that_hid_the_parts() -> None:
    # A cohort whose missing parts came from the same seed's permutation once got a subsample
    # made only of the records lacking their static part.
    n = 3200
    order = np.random.default_rng(0).permutation(n)
    has_s, has_t = np.ones(n, bool), np.ones(n, bool)
    has_s[order[:640]], has_t[order[640:1280]] = False, False
    z = np.random.default_rng(1).normal(size=(n, 4))
    a = align(z, z, has_t, has_s, None, AlignmentConfig(method="gw", subsample=500))
    assert 350 < a.n_static < 450 and 350 < a.n_temporal < 450


def test_unregularised_gw_and_the_fused_cost_known_answers() -> None:
    z_t, z_s, has_t, has_s, labels = _planted(seed=3)
    a = align(z_t, z_s, has_t, has_s, labels, AlignmentConfig(method="gw", epsilon=0.0))
    assert a.pair_accuracy > 0.5
    # Label disagreement costs 1, a shared variable 1/3 per sd (capped at 3 sd), unknowns nothing.
    cost = shared_feature_cost(
        np.array([[0.0], [np.nan]]), np.array([[0.0], [3.0]]), np.array([0, 1]), np.array([0, -1])
    )
    sd = np.nanstd([0.0, 0.0, 3.0])
    np.testing.assert_allclose(cost, [[0.0, min(3 / sd, 3) / 3], [1.0, 0.0]])


def _linear_pairs(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    z_t = rng.normal(size=(n, 6))
    a_true, b_true = rng.normal(size=(6, 8)), rng.normal(size=8)  # injective: invertible back
    labels = rng.integers(0, 2, n)
    z_s = z_t @ a_true + b_true + 0.5 * (2 * labels[:, None] - 1) + 0.01 * rng.normal(size=(n, 8))
    r = rng.random(n)
    return z_t, z_s, r >= 0.2, r < 0.8, labels  # 60% paired, 20% lacking each part


def test_ridge_map_recovers_a_planted_affine_map_and_its_label_shift() -> None:
    z_t, z_s, has_t, has_s, labels = _linear_pairs()
    a = align(z_t, z_s, has_t, has_s, labels, AlignmentConfig(method="ridge"))
    assert a.method == "ridge" and a.n_pairs == int((has_t & has_s).sum())
    lacks = ~has_s
    err = _relative_error(a.impute_static(z_t[lacks], labels[lacks]), z_s[lacks])
    assert err < 0.03, err
    # Without the label the 0.5 shift per class is lost: the label is part of the map's input.
    no_label = align(z_t, z_s, has_t, has_s, None, AlignmentConfig(method="ridge"))
    assert _relative_error(no_label.impute_static(z_t[lacks]), z_s[lacks]) > 3 * err
    # The reverse direction is a least-squares inverse of the same map.
    back = a.impute_temporal(z_s[~has_t], labels[~has_t])
    assert _relative_error(back, z_t[~has_t]) < 0.2


@pytest.mark.slow
def test_mlp_map_fits_a_nonlinear_pairing_that_ridge_cannot() -> None:
    rng = np.random.default_rng(4)
    z_t = rng.uniform(-2, 2, size=(1500, 2))
    z_s = np.stack([np.sin(2 * z_t[:, 0]), z_t[:, 0] * z_t[:, 1]], axis=1)
    has_t, has_s = np.ones(1500, bool), rng.random(1500) < 0.8
    errs = {}
    for method in ("ridge", "mlp"):
        a = align(z_t, z_s, has_t, has_s, None, AlignmentConfig(method=method))
        errs[method] = _relative_error(a.impute_static(z_t[~has_s]), z_s[~has_s])
    assert errs["mlp"] < 0.35 < 0.9 < errs["ridge"], errs


def test_supervised_maps_need_known_pairs() -> None:
    z_t, z_s, has_t, has_s, labels = _linear_pairs()
    with pytest.raises(ConfigError, match="at least 4 records with both parts"):
        align(z_t, z_s, has_t, ~has_t, labels, AlignmentConfig(method="ridge"))
    with pytest.raises(ConfigError, match="Unknown alignment method"):
        AlignmentConfig(method="magic")


def test_ddpm_schedule_reports_how_far_from_noise_it_ends() -> None:
    paper = DDPMSchedule()  # T = 50, beta 1e-4 .. 1e-2
    assert paper.terminal_signal == pytest.approx(0.881, abs=0.002)
    assert DDPMSchedule(50, 1e-4, 0.2).terminal_signal < 0.07


@pytest.mark.slow
def test_latent_ddpm_fits_a_labelled_toy_distribution() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    n = 4000
    labels = torch.randint(0, 2, (n,), generator=gen)
    means = torch.tensor([[-1.0, 0.5], [1.0, -0.5]])
    x0 = means[labels] + 0.3 * torch.randn(n, 2, generator=gen)
    schedule = DDPMSchedule(50, 1e-4, 0.2)
    net = LatentDenoiser(DenoiserConfig(2, hidden=64, blocks=2, n_classes=2))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(1500):
        idx = torch.randint(0, n, (256,), generator=gen)
        lab = labels[idx].clone()
        lab[torch.rand(256, generator=gen) < 0.1] = 2
        loss = ddpm.epsilon_loss(lambda x, t, y=lab: net(x, t, y), x0[idx], schedule, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    for cls in (0, 1):
        denoise = classifier_free(net, torch.full((2000,), cls), net.null_label, 1.0)
        noise = torch.randn(2000, 2, generator=gen)
        out = ddpm.ancestral_sample(denoise, noise, schedule, generator=gen)
        assert torch.allclose(out.mean(0), means[cls], atol=0.15), out.mean(0)
        assert torch.allclose(out.std(0), torch.tensor([0.3, 0.3]), atol=0.1), out.std(0)


@pytest.mark.slow
def test_end_to_end_with_30_percent_missing_modalities(tmp_path) -> None:
    cohort = toy_cohort(240, missing_static=0.15, missing_temporal=0.15)
    has_s, has_t = modality_presence(cohort)
    assert (~has_s).sum() == 36 and (~has_t).sum() == 36
    steps = []
    result = train_flexgen(cohort, TINY, callback=lambda i, n, loss: steps.append((i, n)))
    assert steps[-1][0] == steps[-1][1] == len(result.losses)
    assert result.alignment is not None
    assert result.alignment.n_temporal == result.alignment.n_static == 204
    assert result.model.training["records"] == 240  # every record is used
    synth = result.model.generate(FlexGenSettings(n=50, seed=3))
    gen_cohort = synth.cohort
    assert gen_cohort.temporal.values.shape == (50, 8, 3)
    has_s2, has_t2 = modality_presence(gen_cohort)
    assert has_s2.all()  # complete patients: a static row for everyone
    assert np.isnan(gen_cohort.temporal.values[~gen_cohort.temporal.mask]).all()
    assert np.isfinite(gen_cohort.temporal.values[gen_cohort.temporal.mask]).all()
    # The summary table has the real cohort's columns, so the Review page can compare them.
    assert synth.table.columns == ehr_table(cohort).columns
    assert synth.table.n_records == 50 and synth.table.labels is not None
    # Saved and reloaded, the same seed gives the same patients.
    result.model.save(tmp_path / "m", data_card={}, training_command="test", metrics={})
    again = FlexGenModel.load(tmp_path / "m", device="cpu").generate(FlexGenSettings(n=50, seed=3))
    np.testing.assert_array_equal(again.cohort.temporal.mask, gen_cohort.temporal.mask)
    np.testing.assert_allclose(
        again.cohort.static["Age"].to_numpy(), gen_cohort.static["Age"].to_numpy()
    )


@pytest.mark.parametrize("variant", ["complete_case", "knn"])
@pytest.mark.slow
def test_baseline_variants_train(variant: str) -> None:
    cohort = toy_cohort(200, missing_static=0.2, missing_temporal=0.2)
    steps: list[tuple[int, int]] = []
    result = train_flexgen(
        cohort, replace(TINY, variant=variant), callback=lambda s, t, _: steps.append((s, t))
    )
    expected = 120 if variant == "complete_case" else 200
    assert result.model.training["records"] == expected
    assert result.alignment is None
    assert steps[-1][0] == steps[-1][1]  # the progress bar ends full
    assert "nearest" in result.missing_parts_note or "Complete-case" in result.missing_parts_note
    assert result.model.generate(FlexGenSettings(n=10)).cohort.n_records == 10


def test_knn_imputation_copies_from_the_nearest_complete_records() -> None:
    x_s = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    x_t = np.zeros((4, 2, 2), dtype=np.float32)
    x_t[0] = [[0.1, 1], [0.2, 1]]
    x_t[1] = [[0.9, 1], [0.8, 1]]
    x_t[2] = [[0.9, 1], [0.8, 1]]  # looks like record 1 in time
    has_s = np.array([True, True, False, True])
    has_t = np.array([True, True, True, False])
    s, t = knn_impute(x_s, x_t, has_s, has_t, k=1)
    np.testing.assert_array_equal(s[2], x_s[1])
    np.testing.assert_array_equal(t[3], x_t[0])  # static [0, 0] is record 0's


@pytest.mark.slow
def test_stopping_early_returns_a_usable_model() -> None:
    done = []  # stop asked once the first step is done: it is kept, nothing after it runs
    result = train_flexgen(
        toy_cohort(120), TINY, callback=lambda *step: done.append(step), should_stop=lambda: done
    )
    assert result.stopped_early and len(result.losses) == 1
    assert result.model.generate(FlexGenSettings(n=5)).cohort.n_records == 5


def test_tampered_checkpoint_is_refused(tmp_path) -> None:
    model = train_flexgen(toy_cohort(80), replace(TINY, vae_epochs=1, diffusion_iters=2)).model
    model.save(tmp_path / "m", data_card={}, training_command="test", metrics={})
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        FlexGenModel.load(tmp_path / "m", device="cpu")


# --- bad input --------------------------------------------------------------------------------------
def test_cohort_without_temporal_part_names_the_model_that_fits() -> None:
    cohort = replace(toy_cohort(40), temporal=None)
    with pytest.raises(CohortError, match="no temporal part.*EHRDiff"):
        train_flexgen(cohort, TINY)


def test_all_records_missing_the_static_part_is_refused() -> None:
    with pytest.raises(CohortError, match="every record misses the static part"):
        train_flexgen(toy_cohort(40, missing_static=1.0), TINY)


def test_a_label_with_one_class_is_refused() -> None:
    cohort = toy_cohort(40)
    cohort = replace(cohort, labels=np.zeros(40, dtype=np.int64))
    with pytest.raises(CohortError, match="single class"):
        train_flexgen(cohort, TINY)
    assert train_flexgen(cohort, replace(TINY, conditional=False, vae_epochs=1, diffusion_iters=2))


def test_series_shorter_than_the_minimum_grid_is_refused() -> None:
    with pytest.raises(CohortError, match="at least 4 grid steps"):
        train_flexgen(toy_cohort(40, steps=2), TINY)


def test_cohort_on_another_grid_does_not_fit_a_trained_model() -> None:
    model = train_flexgen(toy_cohort(80), replace(TINY, vae_epochs=1, diffusion_iters=2)).model
    with pytest.raises(CohortError, match="12 steps; the model was trained on 8"):
        model.encoding.check_compatible(toy_cohort(40, steps=12))


@pytest.mark.slow
def test_two_trainings_at_once_give_the_weights_of_one_alone():
    """The app trains two models at once in threads: initialisation and reparameterisation
    noise must not draw from a shared generator, or neither run is reproducible."""
    import threading

    cohort = toy_cohort(120)
    cfg = replace(TINY, vae_epochs=3, diffusion_iters=20)

    def weights() -> dict[str, torch.Tensor]:
        model = train_flexgen(cohort, cfg).model
        return {
            **{f"s.{k}": v for k, v in model.static_vae.state_dict().items()},
            **{f"t.{k}": v for k, v in model.temporal_vae.state_dict().items()},
            **{f"d.{k}": v for k, v in model.denoiser.state_dict().items()},
        }

    alone = weights()
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(weights())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for other in results:
        assert all(torch.equal(alone[k], other[k]) for k in alone)
