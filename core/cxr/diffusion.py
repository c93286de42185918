"""Latent DDPM training objective with DDL-CXR's contrastive term, and the DDIM sampler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from core.errors import ConfigError

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int = 1000
    beta_start: float = 0.0015  # LDM's "linear" (sqrt-spaced) schedule, as in DDL-CXR
    beta_end: float = 0.0195
    contrastive_margin: float = 0.2
    contrastive_weight: float = 1.0
    perturb_beta: float = 0.5  # E' = (1 - beta) E + beta * noise
    ehr_dropout: float = 0.1  # trains the null context, i.e. the no-EHR model

    def to_json(self) -> dict:
        return asdict(self)


class Schedule:
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


@torch.no_grad()
def ddim_sample(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: tuple[int, ...],
    schedule: Schedule,
    *,
    steps: int,
    eta: float,
    generator: torch.Generator,
    device: torch.device,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021) from pure noise; ``denoise(z_t, t)`` predicts epsilon.

    ``eta = 0`` is deterministic given the initial noise; ``eta = 1`` matches DDPM's variance.
    Noise is drawn from ``generator`` on the CPU, so a seed gives the same result on every device.
    """
    total = schedule.cfg.timesteps
    if not 1 <= steps <= total:
        raise ConfigError(f"DDIM steps must be between 1 and {total}, got {steps}.")
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"DDIM eta must be between 0 and 1, got {eta}.")
    ts = torch.linspace(total - 1, 0, steps).round().long().unique_consecutive()
    alpha_bar = schedule.alpha_bar.to(device)
    z = torch.randn(shape, generator=generator).to(device)
    for i, t in enumerate(ts):
        t_batch = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        eps = denoise(z, t_batch)
        ab = alpha_bar[t]
        ab_prev = alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=device)
        z0 = (z - (1 - ab).sqrt() * eps) / ab.sqrt()
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
        direction = (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        z = ab_prev.sqrt() * z0 + direction
        if eta > 0 and i + 1 < len(ts):
            z = z + sigma * torch.randn(shape, generator=generator).to(device)
        if callback is not None:
            callback(i + 1, len(ts))
    return z
