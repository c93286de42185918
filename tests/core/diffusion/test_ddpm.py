"""Discrete-time schedules and samplers: known answers, seeding, anchoring, thresholding."""

from __future__ import annotations

import pytest
import torch

from core.device import make_generator
from core.diffusion.ddpm import DDPMSchedule, ddim_sample, start_step, threshold_x0
from core.diffusion.guidance import classifier_free
from core.errors import ConfigError

LATENT = (2, 4, 8, 8)


def _noise(seed: int, shape: tuple[int, ...] = LATENT) -> tuple[torch.Tensor, torch.Generator]:
    gen = make_generator(seed)
    return torch.randn(shape, generator=gen), gen


def test_schedule_spacings_and_forward_process() -> None:
    lin = DDPMSchedule(100, 1e-4, 2e-2)
    scaled = DDPMSchedule(100, 1e-4, 2e-2, "scaled_linear")
    assert lin.betas()[0] == pytest.approx(1e-4) and scaled.betas()[-1] == pytest.approx(2e-2)
    assert float(scaled.betas()[50]) < float(lin.betas()[50])  # sqrt spacing rises later
    assert DDPMSchedule.from_json({"steps": 50, "beta_start": 1e-4, "beta_end": 1e-2}) == (
        DDPMSchedule()
    )  # manifests written before the spacing field read as linear
    x0, noise = torch.ones(3, 2), torch.zeros(3, 2)
    out = lin.q_sample(x0, torch.tensor([0, 50, 99]), noise)
    assert torch.allclose(out[:, 0], lin.alpha_bars()[[0, 50, 99]].float().sqrt())
    with pytest.raises(ConfigError, match="spacing"):
        DDPMSchedule(spacing="cosine")


def test_threshold_keeps_in_range_samples_and_rescales_outliers() -> None:
    x = torch.randn(3, 4, 8, 8).clamp(-2, 2)
    assert torch.equal(threshold_x0(x, 2.5), x)
    assert threshold_x0(x, None) is x
    wild = x.clone()
    wild[1] *= 20
    out = threshold_x0(wild, 2.5)
    assert torch.equal(out[0], x[0]) and out[1].abs().max() <= 2.5 + 1e-5


def test_ddim_is_seeded_and_reports_progress() -> None:
    sched = DDPMSchedule(1000, 0.0015, 0.0195, "scaled_linear")
    calls = []

    def denoise(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.1 * z

    def run(seed: int, **kw) -> torch.Tensor:
        noise, gen = _noise(seed)
        return ddim_sample(denoise, noise, sched, steps=10, eta=1.0, generator=gen, **kw)

    a = run(3, callback=lambda i, n: calls.append((i, n)))
    assert torch.equal(a, run(3)) and not torch.equal(a, run(4)) and torch.isfinite(a).all()
    assert calls[-1] == (10, 10) and len(calls) == 10
    with pytest.raises(ConfigError, match="steps"):
        ddim_sample(denoise, _noise(0)[0], sched, steps=0, eta=0.0, generator=make_generator(0))


def test_ddim_with_the_true_noise_recovers_the_clean_sample() -> None:
    """Known answer: if the denoiser returns the exact noise, DDIM (eta=0) lands on x0."""
    sched = DDPMSchedule(1000, 0.0015, 0.0195, "scaled_linear")
    x0 = torch.randn(1, 4, 8, 8, generator=make_generator(1))
    ab = sched.alpha_bars().float()

    def oracle(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = ab[t[0]]
        return (z - a.sqrt() * x0) / (1 - a).sqrt()

    noise, gen = _noise(0, (1, 4, 8, 8))
    out = ddim_sample(oracle, noise, sched, steps=20, eta=0.0, generator=gen)
    assert torch.allclose(out, x0, atol=1e-4)


def test_eta0_ddim_diverges_without_thresholding_and_stays_bounded_with_it() -> None:
    sched = DDPMSchedule(100, 0.0015, 0.0195, "scaled_linear")

    def unstable(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -3.0 * z  # an epsilon estimate that pushes x0 outward at every step

    noise, gen = _noise(0)
    free = ddim_sample(unstable, noise, sched, steps=20, eta=0.0, generator=gen)
    held = ddim_sample(unstable, noise, sched, steps=20, eta=0.0, generator=gen, x0_bound=3.0)
    assert free.abs().max() > 100
    assert held.abs().max() <= 3.0 + 1e-4


def test_anchored_start_known_answer_and_start_levels() -> None:
    sched = DDPMSchedule(200, 0.0015, 0.0195, "scaled_linear")
    anchor = torch.randn(LATENT)
    seen = {}
    ab = sched.alpha_bars().float()

    def exact(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = ab[t].view(-1, 1, 1, 1)
        return (z - a.sqrt() * anchor) / (1 - a).sqrt()

    noise, gen = _noise(1)
    out = ddim_sample(
        exact,
        noise,
        sched,
        steps=5,
        eta=0.0,
        generator=gen,
        anchor=anchor,
        t_start=60,
        callback=lambda i, n: seen.setdefault("n", n),
    )
    assert torch.allclose(out, anchor, atol=1e-4) and seen["n"] == 5
    levels = [start_step(sched, r) for r in (0.05, 0.3, 1.0, 1e6)]
    assert levels == sorted(levels) and levels[-1] == 199 and levels[0] < levels[2]
    with pytest.raises(ConfigError, match="start step"):
        ddim_sample(exact, noise, sched, steps=2, eta=0.0, generator=gen, t_start=500)


def test_classifier_free_guidance_mixes_in_one_batched_call() -> None:
    calls = []

    def model(x: torch.Tensor, level: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        calls.append(len(x))
        return x * 0 + (0.0 if labels is None else labels[:, None].float())

    labels, x = torch.tensor([3, 3]), torch.zeros(2, 1)
    for level in (torch.tensor(0.5), torch.tensor([7, 7])):  # a noise level or per-sample steps
        calls.clear()
        out = classifier_free(model, labels, null_label=1, scale=2.0)(x, level)
        assert torch.equal(out, torch.full((2, 1), 1 + 2.0 * (3 - 1))) and calls == [4]
    assert torch.equal(classifier_free(model, labels, 1, 0.0)(x, torch.tensor(0.5)), x)
    assert torch.equal(classifier_free(model, labels, 1, 1.0)(x, torch.tensor(0.5)), x + 3)
