"""Training examples of the DDL-CXR forecaster in a VAE's latent space: real pairs (prior and
later image, gap, EHR window) or pseudo-pairs (two random views of one image, no EHR), and the
sampler defaults fitted on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.cxr.augment import random_views
from core.cxr.data import PairRecord, empty_window, load_images
from core.cxr.diffusion import DiffusionConfig, SamplerConfig
from core.cxr.ehr_encoder import EHRTokens
from core.cxr.ehr_window import EHRVocabulary, tokens_from_windows
from core.cxr.pipeline import CXRAutoencoder
from core.device import make_generator
from core.progress import ProgressCallback

PSEUDO_GAP_RANGE_HOURS = (24.0, 24.0 * 22)  # view changes do not depend on the gap: any in range


@dataclass
class LatentPairs:
    """Training examples in latent space; ``has_ehr`` False rows always see the null context."""

    z0: torch.Tensor
    z1: torch.Tensor
    gaps: torch.Tensor
    tokens: EHRTokens
    labels: torch.Tensor
    has_ehr: torch.Tensor

    def __len__(self) -> int:
        return len(self.z0)


def latent_pairs(
    pairs: list[PairRecord],
    autoencoder: CXRAutoencoder,
    callback: ProgressCallback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled latents of every pair's prior and later image (each image encoded once)."""
    paths = sorted({p.prior for p in pairs} | {p.later for p in pairs})
    images = load_images(paths, autoencoder.size, autoencoder.fit, callback) / 255.0
    latents = torch.cat([autoencoder.encode(images[i : i + 64]) for i in range(0, len(images), 64)])
    row = {p: i for i, p in enumerate(paths)}
    z0 = latents[[row[p.prior] for p in pairs]]
    z1 = latents[[row[p.later] for p in pairs]]
    return z0, z1


def pair_latents(
    pairs: list[PairRecord], autoencoder: CXRAutoencoder, vocabulary: EHRVocabulary, max_tokens: int
) -> LatentPairs:
    z0, z1 = latent_pairs(pairs, autoencoder)
    return LatentPairs(
        z0,
        z1,
        torch.tensor([p.gap_hours for p in pairs], dtype=torch.float32),
        tokens_from_windows([p.window for p in pairs], vocabulary, max_tokens),
        torch.tensor([p.label for p in pairs], dtype=torch.long),
        torch.ones(len(pairs), dtype=torch.bool),
    )


def pseudo_pair_latents(
    paths: list[Path],
    autoencoder: CXRAutoencoder,
    vocabulary: EHRVocabulary,
    max_tokens: int,
    *,
    views_per_image: int,
    gap_range_hours: tuple[float, float],
    seed: int,
) -> LatentPairs:
    """Two independent random views of each image per round (``core.cxr.augment``), no EHR,
    gaps drawn log-uniformly over ``gap_range_hours`` (view changes do not depend on the gap)."""
    gen = make_generator(seed)
    images = torch.as_tensor(
        load_images(paths, 2 * autoencoder.size, autoencoder.fit), dtype=torch.float32
    )
    z0s, z1s = [], []
    for _ in range(views_per_image):
        for i in range(0, len(images), 128):
            chunk = images[i : i + 128] / 255.0
            z0s.append(autoencoder.encode(random_views(chunk, autoencoder.size, gen)))
            z1s.append(autoencoder.encode(random_views(chunk, autoencoder.size, gen)))
    n = sum(len(z) for z in z0s)
    lo, hi = np.log(gap_range_hours[0]), np.log(gap_range_hours[1])
    gaps = torch.exp(lo + (hi - lo) * torch.rand(n, generator=gen))
    return LatentPairs(
        torch.cat(z0s).cpu(),
        torch.cat(z1s).cpu(),
        gaps,
        tokens_from_windows([empty_window()] * n, vocabulary, max_tokens),
        torch.full((n,), -1, dtype=torch.long),
        torch.zeros(n, dtype=torch.bool),
    )


def fit_sampler(data: LatentPairs, diffusion: DiffusionConfig, **defaults: object) -> SamplerConfig:
    """Sampler defaults fitted on training pairs: the RMS latent change against log gap (for the
    prior-anchored start) and the targets' 99.9th percentile of ``|x|`` (for thresholding)."""
    change = (data.z1 - data.z0).pow(2).mean(dim=(1, 2, 3)).sqrt().numpy()
    log_gap = np.log(np.maximum(data.gaps.numpy(), 1.0))
    a, b = float(change.mean()), 0.0
    if len(change) >= 3 and np.ptp(log_gap) > 0:
        slope, intercept = np.polyfit(log_gap, change, 1)
        if slope > 0:  # change cannot shrink with the gap; a negative fit is noise
            a, b = float(intercept), float(slope)
    x = data.z1 if diffusion.target == "later" else (data.z1 - data.z0) / diffusion.residual_scale
    bound = float(torch.quantile(x.abs().flatten()[:2_000_000], 0.999))
    return SamplerConfig(
        **{"x0_bound": round(bound, 4), "change_rms": (round(float(a), 5), round(float(b), 5))}
        | defaults  # type: ignore[arg-type]
    )


def residual_scale(data: LatentPairs) -> float:
    return round(float((data.z1 - data.z0).pow(2).mean().sqrt()), 5)
