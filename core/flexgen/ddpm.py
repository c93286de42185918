"""Latent DDPM (Ho et al. 2020) as FLEXGEN-EHR uses it: T steps, linear betas, epsilon loss,
ancestral sampling with classifier-free guidance.

The paper's schedule (T = 50, beta 1e-4 .. 1e-2) ends at alpha_bar_T = 0.78, i.e. x_T still
holds 88% of the signal; sampling starts from N(0, I) all the same. The schedule is configurable
and :func:`DDPMSchedule.terminal_signal` reports how far from pure noise it ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from core.config import JSONConfig
from core.errors import ConfigError
from core.flexgen.networks import LatentDenoiser
from core.progress import ProgressCallback


@dataclass(frozen=True)
class DDPMSchedule(JSONConfig):
    steps: int = 50
    beta_start: float = 1e-4
    beta_end: float = 1e-2

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= 2000:
            raise ConfigError(f"DDPM steps must be between 1 and 2000, got {self.steps}.")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ConfigError("DDPM betas must satisfy 0 < beta_start <= beta_end < 1.")

    def betas(self) -> torch.Tensor:
        return torch.linspace(self.beta_start, self.beta_end, self.steps, dtype=torch.float64)

    def alpha_bars(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas(), dim=0)

    @property
    def terminal_signal(self) -> float:
        """sqrt(alpha_bar_T): the share of x_0 left in x_T (0 = pure noise)."""
        return float(self.alpha_bars()[-1].sqrt())


def ddpm_loss(
    net: LatentDenoiser,
    x0: torch.Tensor,
    schedule: DDPMSchedule,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared error of the predicted noise at a uniformly drawn step."""
    n = len(x0)
    t = torch.randint(0, schedule.steps, (n,), device=x0.device, generator=generator)
    ab = schedule.alpha_bars().to(device=x0.device, dtype=x0.dtype)[t][:, None]
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise
    return F.mse_loss(net(xt, t, labels), noise)


@torch.no_grad()
def sample(
    net: LatentDenoiser,
    noise: torch.Tensor,
    schedule: DDPMSchedule,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
    guidance: float = 1.0,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """Ancestral sampling from ``noise`` (x_T). Fresh noise per step comes from ``generator``
    (on the CPU, so samples are identical on every device).

    With labels, ``guidance`` w mixes eps = eps_null + w (eps_label - eps_null): 1 is plain
    conditional sampling, 0 ignores the label.
    """
    betas = schedule.betas()
    alphas = 1.0 - betas
    alpha_bars = torch.cumprod(alphas, dim=0)
    x = noise
    device, dtype = x.device, x.dtype
    for i, step in enumerate(reversed(range(schedule.steps))):
        t = torch.full((len(x),), step, device=device, dtype=torch.long)
        if labels is None or guidance == 1.0:
            eps = net(x, t, labels)
        elif guidance == 0.0:
            eps = net(x, t, None)
        else:
            null = torch.full_like(labels, net.null_label)
            both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
            cond, uncond = both.chunk(2)
            eps = uncond + guidance * (cond - uncond)
        a, ab, b = (float(v[step]) for v in (alphas, alpha_bars, betas))
        mean = (x - b / (1.0 - ab) ** 0.5 * eps) / a**0.5
        if step > 0:
            # Posterior variance beta_tilde (Ho et al., eq. 7).
            var = b * (1.0 - float(alpha_bars[step - 1])) / (1.0 - ab)
            z = torch.randn(x.shape, generator=generator).to(device=device, dtype=dtype)
            x = mean + var**0.5 * z
        else:
            x = mean
        if callback is not None:
            callback(i + 1, schedule.steps)
    return x
