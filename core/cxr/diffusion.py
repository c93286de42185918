"""DDL-CXR's diffusion settings: training objective terms and the default sampler (DDIM in
:mod:`core.diffusion.ddpm`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from core.config import JSONConfig
from core.diffusion.ddpm import DDPMSchedule
from core.errors import ConfigError

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

    def schedule(self) -> DDPMSchedule:
        return DDPMSchedule(self.timesteps, self.beta_start, self.beta_end, "scaled_linear")


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


def ramp(step: int, ramp_steps: int) -> float:
    """Contrastive weight ramp 0 -> 1 over ``ramp_steps`` (DDL-CXR warms the term in)."""
    return 1.0 if ramp_steps <= 0 else min(1.0, step / ramp_steps)


def perturb_context(
    context: torch.Tensor, beta: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    noise = torch.randn(context.shape, generator=generator).to(context)  # CPU generator
    return (1.0 - beta) * context + beta * noise
