"""Latent DDPM training objective with DDL-CXR's contrastive term, and the DDIM sampler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from core.config import JSONConfig
from core.errors import ConfigError
from core.progress import ProgressCallback

Target = Literal["later", "residual"]
Anchor = Literal["noise", "prior"]
TARGETS: tuple[str, ...] = ("later", "residual")
ANCHORS: tuple[str, ...] = ("noise", "prior")


@dataclass(frozen=True)
class DiffusionConfig(JSONConfig):
    timesteps: int = 1000
    beta_start: float = 0.0015  # LDM's "linear" (sqrt-spaced) schedule, as in DDL-CXR
    beta_end: float = 0.0195
    contrastive_margin: float = 0.2
    contrastive_weight: float = 1.0
    perturb_beta: float = 0.5  # E' = (1 - beta) E + beta * noise
    ehr_dropout: float = 0.1  # trains the null context, i.e. the no-EHR model
    # What the network denoises: the later latent itself, or its change from the prior divided by
    # ``residual_scale`` (the training changes' RMS, so the diffused quantity has unit scale).
    target: Target = "later"
    residual_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"Diffusion target must be one of {TARGETS}, got {self.target!r}.")
        if not self.residual_scale > 0:
            raise ConfigError(f"residual_scale must be positive, got {self.residual_scale}.")


@dataclass(frozen=True)
class SamplerConfig(JSONConfig):
    """How a forecaster samples by default; stored in its manifest.

    ``anchor = "prior"`` starts DDIM from the prior's latent (or, for a residual model, from
    "no change") noised to a horizon-dependent level: the noise-to-signal ratio at the start is
    ``strength`` times the RMS latent change expected at that gap, ``change_rms(gap) = a + b *
    log(gap hours)`` fitted on the training pairs. ``x0_bound`` is the training targets' 99.9th
    percentile of ``|x|`` used for dynamic thresholding (``None``: off).
    """

    anchor: Anchor = "noise"
    strength: float = 2.0
    eta: float = 1.0
    x0_bound: float | None = None
    change_rms: tuple[float, float] = (0.5, 0.0)

    def __post_init__(self) -> None:
        if self.anchor not in ANCHORS:
            raise ConfigError(f"Sampler anchor must be one of {ANCHORS}, got {self.anchor!r}.")
        if not self.strength > 0:
            raise ConfigError(f"Anchor strength must be positive, got {self.strength}.")

    def expected_change(self, gap_hours: float) -> float:
        a, b = self.change_rms
        return max(a + b * float(np.log(max(gap_hours, 1.0))), 1e-3)


class AlphaBarSchedule:
    def __init__(self, cfg: DiffusionConfig) -> None:
        self.cfg = cfg
        betas = (
            torch.linspace(
                cfg.beta_start**0.5, cfg.beta_end**0.5, cfg.timesteps, dtype=torch.float64
            )
            ** 2
        )
        self.alpha_bar = torch.cumprod(1.0 - betas, dim=0).float()

    def q_sample(self, z0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar.to(z0.device)[t].view(-1, 1, 1, 1)
        return ab.sqrt() * z0 + (1 - ab).sqrt() * noise


def ramp(step: int, ramp_steps: int) -> float:
    """Contrastive weight ramp 0 -> 1 over ``ramp_steps`` (DDL-CXR warms the term in)."""
    return 1.0 if ramp_steps <= 0 else min(1.0, step / ramp_steps)


def perturb_context(
    context: torch.Tensor, beta: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    noise = torch.randn(context.shape, generator=generator).to(context)  # CPU generator
    return (1.0 - beta) * context + beta * noise


def threshold_x0(x0: torch.Tensor, bound: float | None, percentile: float = 0.995) -> torch.Tensor:
    """Dynamic thresholding of a predicted clean latent (Imagen, Saharia et al. 2022).

    Per sample, ``s`` is the ``percentile`` of ``|x0|``; where ``s`` exceeds ``bound`` (the
    training latents' range), ``x0`` is clipped to ``[-s, s]`` and rescaled into
    ``[-bound, bound]``. Without it a few-step DDIM with eta 0 drifts into saturated blobs: an
    early bad x0 estimate is fed back deterministically instead of being washed out by noise.
    """
    if bound is None:
        return x0
    flat = x0.abs().flatten(1)
    s = torch.quantile(flat.float(), percentile, dim=1).clamp(min=bound).to(x0)
    s = s.view(-1, *([1] * (x0.dim() - 1)))
    return x0.clamp(-s, s) * (bound / s)


def start_step(schedule: AlphaBarSchedule, noise_to_signal: float) -> int:
    """The first step whose noise-to-signal ratio ``sqrt((1 - a) / a)`` reaches the given value
    (SDEdit's start level); the last step when none does."""
    ab = schedule.alpha_bar.double()
    ratio = ((1 - ab) / ab).sqrt()
    hits = torch.nonzero(ratio >= noise_to_signal)
    return int(hits[0]) if len(hits) else schedule.cfg.timesteps - 1


@torch.no_grad()
def ddim_sample(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: tuple[int, ...],
    schedule: AlphaBarSchedule,
    *,
    steps: int,
    eta: float,
    generator: torch.Generator,
    device: torch.device,
    callback: ProgressCallback | None = None,
    anchor: torch.Tensor | None = None,
    t_start: int | None = None,
    x0_bound: float | None = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021); ``denoise(z_t, t)`` predicts epsilon.

    By default sampling starts from pure noise at the last step. With ``anchor`` and ``t_start``
    it starts from ``anchor`` noised to step ``t_start`` (SDEdit, Meng et al. 2022) and runs
    ``steps`` steps from there, so a lower start keeps more of the anchor. ``x0_bound`` turns on
    dynamic thresholding of each predicted clean latent. ``eta = 0`` is deterministic given the
    initial noise; ``eta = 1`` matches DDPM's variance. Noise is drawn from ``generator`` on the
    CPU, so a seed gives the same result on every device.
    """
    total = schedule.cfg.timesteps
    first = total - 1 if t_start is None else t_start
    if not 0 <= first < total:
        raise ConfigError(f"DDIM start step must be between 0 and {total - 1}, got {first}.")
    if not 1 <= steps <= total:
        raise ConfigError(f"DDIM steps must be between 1 and {total}, got {steps}.")
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"DDIM eta must be between 0 and 1, got {eta}.")
    ts = torch.linspace(first, 0, min(steps, first + 1)).round().long().unique_consecutive()
    alpha_bar = schedule.alpha_bar.to(device)
    z = torch.randn(shape, generator=generator).to(device)
    if anchor is not None and t_start is not None:
        ab0 = alpha_bar[first]
        z = ab0.sqrt() * anchor.to(device) + (1 - ab0).sqrt() * z
    for i, t in enumerate(ts):
        t_batch = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        eps = denoise(z, t_batch)
        ab = alpha_bar[t]
        ab_prev = alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=device)
        z0 = threshold_x0((z - (1 - ab).sqrt() * eps) / ab.sqrt(), x0_bound)
        if x0_bound is not None:  # keep epsilon consistent with the thresholded x0
            eps = (z - ab.sqrt() * z0) / (1 - ab).sqrt()
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
        direction = (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        z = ab_prev.sqrt() * z0 + direction
        if eta > 0 and i + 1 < len(ts):
            z = z + sigma * torch.randn(shape, generator=generator).to(device)
        if callback is not None:
            callback(i + 1, len(ts))
    return z
