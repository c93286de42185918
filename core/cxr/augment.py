"""Pseudo-pairs from single radiographs: what positioning and exposure changes look like.

Consecutive radiographs of one patient differ mostly by how the patient was positioned and how
the film was exposed. From one image, two independently re-positioned (shift, rotation, scale)
and re-exposed (gamma, contrast, brightness) views make a (prior, later) pair whose only change is
of that kind; a forecaster pretrained on many of them learns to carry anatomy across such
changes before it sees the few real longitudinal pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ViewChange:
    """Ranges of the random changes, uniform in ``[-x, x]`` (gamma: log-uniform in 1/g..g)."""

    shift: float = 0.04  # fraction of the image side
    rotation_deg: float = 4.0
    scale: float = 0.05
    gamma: float = 1.25
    contrast: float = 0.10
    brightness: float = 0.05


def random_views(
    images: torch.Tensor,
    out_size: int,
    generator: torch.Generator,
    change: ViewChange = ViewChange(),
) -> torch.Tensor:
    """``[B, H, W]`` images in [0, 1] -> ``[B, out_size, out_size]`` randomly changed views.

    Warped at the input resolution and then area-downsampled, so a view is no blurrier than the
    unchanged image at ``out_size`` (both sides of a pair pass through the same resampling).
    """
    b = images.shape[0]

    def uniform(width: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) * 2 - 1) * width

    angle = uniform(math.radians(change.rotation_deg))
    scale = 1.0 + uniform(change.scale)
    tx, ty = uniform(2 * change.shift), uniform(2 * change.shift)  # grid units span 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1
    ).to(images)
    x = images[:, None].float()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gamma = torch.exp(uniform(math.log(change.gamma))).to(x).view(-1, 1, 1, 1)
    contrast = (1.0 + uniform(change.contrast)).to(x).view(-1, 1, 1, 1)
    brightness = uniform(change.brightness).to(x).view(-1, 1, 1, 1)
    x = (x.clamp(0, 1) ** gamma - 0.5) * contrast + 0.5 + brightness
    x = F.interpolate(x.clamp(0, 1), size=(out_size, out_size), mode="area")
    return x[:, 0]
