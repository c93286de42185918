"""Deterministic ODE samplers for an EDM denoiser, as pure functions.

``denoise(x, sigma) -> x0_hat`` is any callable (guidance is applied by the caller's closure).
Both samplers use the Karras et al. noise schedule and run float32, batched.

- ``heun``: EDM Algorithm 1 with S_churn = 0 (the EHRDiff default, 32 steps = 63 evaluations).
- ``dpmpp_2m``: DPM-Solver++(2M) (Lu et al. 2022), one evaluation per step, second order by
  reusing the previous denoised estimate (multistep).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, int], None]
SAMPLERS = ("dpmpp_2m", "heun")


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


def network_evaluations(sampler: str, steps: int) -> int:
    return 2 * steps - 1 if sampler == "heun" else steps


@torch.no_grad()
def heun(
    denoise: Denoise, noise: torch.Tensor, sigmas: torch.Tensor, callback: Callback | None = None
) -> torch.Tensor:
    x = noise * sigmas[0]
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
    denoise: Denoise, noise: torch.Tensor, sigmas: torch.Tensor, callback: Callback | None = None
) -> torch.Tensor:
    x = noise * sigmas[0]
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


def sample(
    sampler: str,
    denoise: Denoise,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    callback: Callback | None = None,
) -> torch.Tensor:
    if sampler == "heun":
        return heun(denoise, noise, sigmas, callback)
    if sampler == "dpmpp_2m":
        return dpmpp_2m(denoise, noise, sigmas, callback)
    raise ValueError(f"Unknown sampler '{sampler}'; expected one of {SAMPLERS}.")
