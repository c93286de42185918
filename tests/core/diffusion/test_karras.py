import pytest
import torch

from core.device import make_generator
from core.diffusion import karras

MU, STD = 0.7, 0.3


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact E[x0 | x] for data ~ N(MU, STD^2) per dimension."""
    return (STD**2 * x + sigma**2 * MU) / (STD**2 + sigma**2)


@pytest.mark.parametrize(("sampler", "steps"), [("heun", 32), ("dpmpp_2m", 32)])
def test_samplers_match_the_analytic_gaussian(sampler, steps):
    sigmas = karras.karras_sigmas(steps, 0.002, 80.0)
    noise = torch.randn(20_000, 4, generator=make_generator(0))
    x = karras.sample(sampler, gaussian_denoiser, noise, sigmas)
    assert torch.isfinite(x).all()
    assert abs(float(x.mean()) - MU) < 0.01
    assert abs(float(x.std()) - STD) < 0.01


def test_fast_solver_tracks_heun_per_sample():
    noise = torch.randn(2000, 3, generator=make_generator(1))
    ref = karras.heun(gaussian_denoiser, noise, karras.karras_sigmas(128, 0.002, 80.0))
    fast = karras.dpmpp_2m(gaussian_denoiser, noise, karras.karras_sigmas(32, 0.002, 80.0))
    assert float((ref - fast).abs().max()) < 0.03


def test_multistep_solver_wins_at_equal_budget():
    """15 network evaluations each: DPM-Solver++(2M) 15 steps vs Heun 8 steps."""
    noise = torch.randn(20_000, 2, generator=make_generator(2))
    err = {
        name: abs(
            float(
                karras.sample(
                    name, gaussian_denoiser, noise, karras.karras_sigmas(steps, 0.002, 80.0)
                ).std()
            )
            - STD
        )
        for name, steps in (("dpmpp_2m", 15), ("heun", 8))
    }
    assert err["dpmpp_2m"] < err["heun"] / 3


def test_schedule_and_callback():
    sigmas = karras.karras_sigmas(5, 0.002, 80.0)
    assert (
        sigmas.shape == (6,)
        and sigmas[0] == pytest.approx(80.0)
        and sigmas[-2] == pytest.approx(0.002)
    )
    assert bool((sigmas[:-1] > sigmas[1:]).all()) and sigmas[-1] == 0
    calls = []
    karras.sample(
        "heun",
        gaussian_denoiser,
        torch.zeros(2, 2),
        sigmas,
        callback=lambda i, n: calls.append((i, n)),
    )
    assert calls == [(i, 5) for i in range(1, 6)]
    assert (
        karras.SAMPLERS.get("heun").evaluations(32) == 63
        and karras.SAMPLERS.get("dpmpp_2m").evaluations(10) == 10
        and karras.SAMPLERS.get(karras.DISTILLED).evaluations(2) == 2
    )
    with pytest.raises(ValueError, match="Unknown sampler"):
        karras.sample("euler", gaussian_denoiser, torch.zeros(1, 1), sigmas)


def gaussian_consistency(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Exact end point of the probability-flow ODE from x at sigma, for data ~ N(MU, STD^2)."""
    return MU + STD * (x - MU) / (STD**2 + sigma**2) ** 0.5


@pytest.mark.parametrize("levels", [[80.0, 0.0], [80.0, 0.5, 0.0]])
def test_consistency_sampler_on_the_exact_gaussian_consistency_function(levels):
    noise = torch.randn(20_000, 4, generator=make_generator(3))
    x = karras.consistency(
        gaussian_consistency, noise, torch.tensor(levels), generator=make_generator(4)
    )
    assert abs(float(x.mean()) - MU) < 0.01 and abs(float(x.std()) - STD) < 0.01
    if len(levels) == 2:  # one evaluation is the teacher's ODE map from the same noise
        ode = karras.heun(gaussian_denoiser, noise, karras.karras_sigmas(128, 0.002, 80.0))
        assert float((ode - x).abs().max()) < 0.01


def test_heun_resumed_mid_way_gives_the_same_end_point():
    noise = torch.randn(500, 3, generator=make_generator(5))
    sigmas = karras.karras_sigmas(32, 0.002, 80.0)
    whole = karras.heun(gaussian_denoiser, noise, sigmas)
    mid = karras.heun_from(gaussian_denoiser, noise * sigmas[0], sigmas[:21])
    assert torch.equal(karras.heun_from(gaussian_denoiser, mid, sigmas[20:]), whole)
