"""Discrete-time (DDPM) diffusion: beta schedules, the forward process and two samplers.

- :func:`ancestral_sample`: Ho et al. 2020, every step, posterior variance beta_tilde.
- :func:`ddim_sample`: Song et al. 2021, any number of steps, ``eta`` from deterministic (0) to
  DDPM's variance (1), optionally started from an anchor (SDEdit, Meng et al. 2022) and with
  dynamic thresholding of the predicted clean sample (Imagen, Saharia et al. 2022).

The package convention (see :mod:`core.diffusion`): ``denoise(x, t) -> eps_hat`` is a closure over
the network, its conditioning and guidance; the caller draws the initial ``noise`` from an
explicit generator and passes the same generator for the per-step noise, so a seed gives the same
samples on every device (noise is drawn on the CPU and moved).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch

from core.config import JSONConfig
from core.errors import ConfigError
from core.progress import ProgressCallback

EpsDenoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Spacing = Literal["linear", "scaled_linear"]
SPACINGS: tuple[str, ...] = ("linear", "scaled_linear")


@dataclass(frozen=True)
class DDPMSchedule(JSONConfig):
    """``steps`` betas from ``beta_start`` to ``beta_end``: evenly spaced ("linear", Ho et al.) or
    evenly spaced in sqrt(beta) ("scaled_linear", the latent-diffusion schedule)."""

    steps: int = 50
    beta_start: float = 1e-4
    beta_end: float = 1e-2
    spacing: Spacing = "linear"

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= 2000:
            raise ConfigError(f"DDPM steps must be between 1 and 2000, got {self.steps}.")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ConfigError("DDPM betas must satisfy 0 < beta_start <= beta_end < 1.")
        if self.spacing not in SPACINGS:
            raise ConfigError(f"Beta spacing must be one of {SPACINGS}, got {self.spacing!r}.")

    def betas(self) -> torch.Tensor:
        if self.spacing == "scaled_linear":
            root = torch.linspace(
                self.beta_start**0.5, self.beta_end**0.5, self.steps, dtype=torch.float64
            )
            return root**2
        return torch.linspace(self.beta_start, self.beta_end, self.steps, dtype=torch.float64)

    def alpha_bars(self) -> torch.Tensor:
        return self._alpha_bars.clone()

    @cached_property
    def _alpha_bars(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas(), dim=0)

    @property
    def terminal_signal(self) -> float:
        """sqrt(alpha_bar_T): the share of x_0 left in x_T (0 = pure noise)."""
        return float(self._alpha_bars[-1].sqrt())

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise, per sample's step ``t``."""
        ab = self._alpha_bars.to(x0.dtype).to(x0.device)[t]
        ab = ab.view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def epsilon_loss(
    predict: EpsDenoise,
    x0: torch.Tensor,
    schedule: DDPMSchedule,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared error of ``predict(x_t, t)`` against the noise, at a uniformly drawn step."""
    t = torch.randint(0, schedule.steps, (len(x0),), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    return torch.nn.functional.mse_loss(predict(schedule.q_sample(x0, t, noise), t), noise)


def _fresh(shape: torch.Size, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator).to(device=like.device, dtype=like.dtype)


@torch.no_grad()
def ancestral_sample(
    denoise: EpsDenoise,
    noise: torch.Tensor,
    schedule: DDPMSchedule,
    *,
    generator: torch.Generator,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """Ancestral sampling from ``noise`` (x_T) through every step of ``schedule``."""
    betas = schedule.betas()
    alphas = 1.0 - betas
    alpha_bars = schedule.alpha_bars()
    x = noise
    for i, step in enumerate(reversed(range(schedule.steps))):
        t = torch.full((len(x),), step, device=x.device, dtype=torch.long)
        eps = denoise(x, t)
        a, ab, b = (float(v[step]) for v in (alphas, alpha_bars, betas))
        mean = (x - b / (1.0 - ab) ** 0.5 * eps) / a**0.5
        if step > 0:
            var = b * (1.0 - float(alpha_bars[step - 1])) / (1.0 - ab)  # beta_tilde, Ho eq. 7
            x = mean + var**0.5 * _fresh(x.shape, generator, x)
        else:
            x = mean
        if callback is not None:
            callback(i + 1, schedule.steps)
    return x


def threshold_x0(x0: torch.Tensor, bound: float | None, percentile: float = 0.995) -> torch.Tensor:
    """Dynamic thresholding of a predicted clean sample (Imagen, Saharia et al. 2022).

    Per sample, ``s`` is the ``percentile`` of ``|x0|``; where ``s`` exceeds ``bound`` (the
    training data's range), ``x0`` is clipped to ``[-s, s]`` and rescaled into
    ``[-bound, bound]``. Without it a few-step DDIM with eta 0 drifts into saturated blobs: an
    early bad x0 estimate is fed back deterministically instead of being washed out by noise.
    """
    if bound is None:
        return x0
    flat = x0.abs().flatten(1)
    s = torch.quantile(flat.float(), percentile, dim=1).clamp(min=bound).to(x0)
    s = s.view(-1, *([1] * (x0.dim() - 1)))
    return x0.clamp(-s, s) * (bound / s)


def start_step(schedule: DDPMSchedule, noise_to_signal: float) -> int:
    """The first step whose noise-to-signal ratio ``sqrt((1 - a) / a)`` reaches the given value
    (SDEdit's start level); the last step when none does."""
    ab = schedule.alpha_bars().float().double()
    ratio = ((1 - ab) / ab).sqrt()
    hits = torch.nonzero(ratio >= noise_to_signal)
    return int(hits[0]) if len(hits) else schedule.steps - 1


@torch.no_grad()
def ddim_sample(
    denoise: EpsDenoise,
    noise: torch.Tensor,
    schedule: DDPMSchedule,
    *,
    steps: int,
    eta: float,
    generator: torch.Generator,
    callback: ProgressCallback | None = None,
    anchor: torch.Tensor | None = None,
    t_start: int | None = None,
    x0_bound: float | None = None,
) -> torch.Tensor:
    """DDIM from ``noise``; ``denoise(x_t, t)`` predicts epsilon.

    By default sampling starts from ``noise`` at the last step. With ``anchor`` and ``t_start``
    it starts from ``anchor`` noised to step ``t_start`` with ``noise`` and runs ``steps`` steps
    from there, so a lower start keeps more of the anchor. ``x0_bound`` turns on dynamic
    thresholding of each predicted clean sample. ``eta = 0`` is deterministic given ``noise``.
    """
    total = schedule.steps
    first = total - 1 if t_start is None else t_start
    if not 0 <= first < total:
        raise ConfigError(f"DDIM start step must be between 0 and {total - 1}, got {first}.")
    if not 1 <= steps <= total:
        raise ConfigError(f"DDIM steps must be between 1 and {total}, got {steps}.")
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"DDIM eta must be between 0 and 1, got {eta}.")
    ts = torch.linspace(first, 0, min(steps, first + 1)).round().long().unique_consecutive()
    device = noise.device
    alpha_bar = schedule.alpha_bars().float().to(device)
    z = noise
    if anchor is not None and t_start is not None:
        ab0 = alpha_bar[first]
        z = ab0.sqrt() * anchor.to(device) + (1 - ab0).sqrt() * z
    for i, t in enumerate(ts):
        t_batch = torch.full((len(z),), int(t), device=device, dtype=torch.long)
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
            z = z + sigma * _fresh(z.shape, generator, z)
        if callback is not None:
            callback(i + 1, len(ts))
    return z
