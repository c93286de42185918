"""Karras et al. (EDM) noise levels and deterministic ODE samplers for an EDM denoiser.

The package convention (see :mod:`core.diffusion`): ``denoise(x, sigma) -> x0_hat`` is a closure
(guidance applied by :func:`core.diffusion.guidance.classifier_free`), the caller draws the
initial ``noise`` from its own generator, progress goes to ``callback``. Both samplers use the
Karras et al. noise schedule and run float32, batched; they draw no noise of their own.

- ``heun``: EDM Algorithm 1 with S_churn = 0 (the EHRDiff default, 32 steps = 63 evaluations).
- ``dpmpp_2m``: DPM-Solver++(2M) (Lu et al. 2022), one evaluation per step, second order by
  reusing the previous denoised estimate (multistep).
- ``consistency``: one evaluation per level for a distilled denoiser (``DISTILLED``), which is no
  score model: it is offered only for such a model and only at the levels it was trained on.

Each sampler is declared once, in :data:`SAMPLERS` at the end (id, label, default schedule and
steps, network evaluations, function); :func:`sample` runs one by id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from core.progress import ProgressCallback
from core.registry import Registry

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DISTILLED = "distilled"


@dataclass(frozen=True)
class SigmaSchedule:
    """Karras et al. noise levels: ``steps`` values from sigma_max to sigma_min, spaced by rho."""

    sigma_max: float
    rho: float
    description: str


# "edm" is the paper's (image-sized) schedule. "tuned" starts at sigma 10: for data in [0, 1] with
# sigma_data <= 0.3 the signal-to-noise ratio there is ~1e-3, so steps above it are wasted, and
# rho = 3 spreads the remaining steps more evenly. Measured on both shipped checkpoints
# (benchmarks/ehrdiff_sampling.py); Heun keeps the paper's schedule.
SCHEDULES = {
    "edm": SigmaSchedule(80.0, 7.0, "EDM (sigma_max 80, rho 7)"),
    "tuned": SigmaSchedule(10.0, 3.0, "tuned for [0, 1] data (sigma_max 10, rho 3)"),
}


def karras_sigmas(
    steps: int,
    sigma_min: float,
    sigma_max: float,
    rho: float = 7.0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``steps`` decreasing noise levels from sigma_max to sigma_min, then a final 0."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64, device=device)
    inv = sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))
    sigmas = torch.cat([inv**rho, torch.zeros(1, dtype=torch.float64, device=device)])
    return sigmas.float()


def initial_state(
    noise: torch.Tensor, sigmas: torch.Tensor, mean: torch.Tensor | None
) -> torch.Tensor:
    """x at sigma_max: the forward marginal is ~ N(data mean, sigma_max^2 I). Starting from zero
    mean is harmless at sigma_max 80 but biases a short schedule by about mean / sigma_max."""
    x = noise * sigmas[0]
    return x if mean is None else x + mean


@torch.no_grad()
def heun(
    denoise: Denoise,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,  # deterministic: draws nothing
    callback: ProgressCallback | None = None,
    mean: torch.Tensor | None = None,
) -> torch.Tensor:
    return heun_from(denoise, initial_state(noise, sigmas, mean), sigmas, callback=callback)


@torch.no_grad()
def heun_from(
    denoise: Denoise,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """Heun steps from state ``x`` at ``sigmas[0]``: a trajectory stopped at any level and resumed
    there gives the same end point (distillation reads the teacher's state mid-way)."""
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = (x - denoise(x, s)) / s
        x_next = x + (s_next - s) * d
        if s_next > 0:
            d_next = (x_next - denoise(x_next, s_next)) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d_next)
        x = x_next
        if callback is not None:
            callback(i + 1, n)
    return x


@torch.no_grad()
def dpmpp_2m(
    denoise: Denoise,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,  # deterministic: draws nothing
    callback: ProgressCallback | None = None,
    mean: torch.Tensor | None = None,
) -> torch.Tensor:
    x = initial_state(noise, sigmas, mean)
    n = len(sigmas) - 1
    old_denoised = None
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, s)
        if s_next == 0:
            x = denoised
        else:
            t, t_next = -s.log(), -s_next.log()
            h = t_next - t
            if old_denoised is None:
                d = denoised
            else:
                h_last = t - (-sigmas[i - 1].log())
                r = h_last / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (s_next / s) * x - torch.expm1(-h) * d
        old_denoised = denoised
        if callback is not None:
            callback(i + 1, n)
    return x


@torch.no_grad()
def consistency(
    denoise: Denoise,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
    mean: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1) for a distilled denoiser that
    maps x at each level of ``sigmas`` straight to the end of the teacher's ODE: one evaluation per
    level; between levels the estimate is noised again with fresh noise from ``generator`` (drawn
    where the generator lives, so samples do not depend on the device)."""
    x = initial_state(noise, sigmas, mean)
    n = len(sigmas) - 1
    for i in range(n):
        x = denoise(x, sigmas[i])
        if sigmas[i + 1] > 0:
            device = generator.device if generator is not None else x.device
            fresh = torch.randn(x.shape, generator=generator, device=device).to(x.device)
            x = x + sigmas[i + 1] * fresh
        if callback is not None:
            callback(i + 1, n)
    return x


@dataclass(frozen=True)
class Sampler:
    """One sampler, declared once. ``steps``: what the app offers by default (a distilled
    sampler's steps are its network evaluations); ``schedule``: the noise levels it samples at
    unless told otherwise (a key of :data:`SCHEDULES`); ``score_model``: False for a sampler of a
    distilled denoiser, which no other sampler can use."""

    id: str
    label: str
    schedule: str
    steps: int
    run: Callable[..., torch.Tensor] = field(repr=False, compare=False)
    evaluations: Callable[[int], int] = field(default=lambda steps: steps, compare=False)
    score_model: bool = True


# The first is the default (the app preselects it); Heun is the paper's sampler, at its 32 steps;
# DPM-Solver++(2M) at the 16 the shipped models are evaluated with.
SAMPLERS: Registry[Sampler] = Registry("sampler")
for _sampler in (
    Sampler("dpmpp_2m", "DPM-Solver++(2M) (default, fast)", "tuned", 16, dpmpp_2m),
    Sampler(
        "heun",
        "Heun (the EHRDiff paper's, 2 evaluations per step)",
        "edm",
        32,
        heun,
        evaluations=lambda steps: 2 * steps - 1,  # the last step needs no correction
    ),
    # its levels are the teacher's Heun-32 levels on the EDM schedule, snapped (core.ehrdiff.distill)
    Sampler(DISTILLED, "Distilled (1 or 2 evaluations)", "edm", 1, consistency, score_model=False),
):
    SAMPLERS.register(_sampler)
DEFAULT_SAMPLER = next(iter(SAMPLERS)).id
SCORE_SAMPLERS = tuple(s.id for s in SAMPLERS if s.score_model)  # for a score model


def sample(
    sampler: str,
    denoise: Denoise,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
    mean: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the sampler with id ``sampler`` (``generator``: for those that draw noise)."""
    if sampler not in SAMPLERS:
        raise ValueError(
            f"Unknown sampler '{sampler}'; expected one of {tuple(s.id for s in SAMPLERS)}."
        )
    return SAMPLERS.get(sampler).run(
        denoise, noise, sigmas, generator=generator, callback=callback, mean=mean
    )
