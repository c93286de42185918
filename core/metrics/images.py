"""Image-forecast metrics: SSIM and PSNR per image pair, Frechet and Wasserstein distances in a
latent space. Pure functions with known answers (identical inputs score best)."""

from __future__ import annotations

import numpy as np
import ot
import torch
import torch.nn.functional as F
from scipy import linalg

_C1 = 0.01**2
_C2 = 0.03**2


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_torch(x: torch.Tensor, y: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Mean SSIM per image of ``[B, 1, H, W]`` tensors with data range 1 (Wang et al. 2004,
    Gaussian window sigma 1.5); differentiable, so training losses use it too."""
    w = _gaussian_window(window).to(x)
    pad = window // 2
    mu_x = F.conv2d(x, w, padding=pad)
    mu_y = F.conv2d(y, w, padding=pad)
    sxx = F.conv2d(x * x, w, padding=pad) - mu_x**2
    syy = F.conv2d(y * y, w, padding=pad) - mu_y**2
    sxy = F.conv2d(x * y, w, padding=pad) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * sxy + _C2)
    den = (mu_x**2 + mu_y**2 + _C1) * (sxx + syy + _C2)
    valid = (num / den)[..., pad:-pad, pad:-pad]  # drop the zero-padded border
    return valid.mean(dim=(1, 2, 3))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two ``[H, W]`` images in [0, 1]."""
    ta = torch.as_tensor(np.asarray(a, np.float32))[None, None]
    tb = torch.as_tensor(np.asarray(b, np.float32))[None, None]
    return float(ssim_torch(ta, tb)[0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]; ``inf`` for identical images."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two ``[N, D]`` samples (FID's formula)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("Frechet distance needs at least 2 samples per set")
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    covmean = linalg.sqrtm(cov_x @ cov_y)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    value = float(np.sum((mu_x - mu_y) ** 2) + np.trace(cov_x + cov_y - 2 * covmean))
    return max(value, 0.0)


def wasserstein_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Exact 2-Wasserstein distance between the two empirical point clouds (POT's EMD solver)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cost = ot.dist(x, y, metric="sqeuclidean")
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    return float(np.sqrt(max(ot.emd2(a, b, cost), 0.0)))
