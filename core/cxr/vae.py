"""KL-regularised convolutional VAE for chest radiographs (the latent space of DDL-CXR).

Loss: L1 reconstruction + ``ssim_weight * (1 - SSIM)`` (a structural term standing in for the
perceptual loss, which would need pretrained ImageNet features) + ``kl_weight * KL`` per pixel,
plus an optional abnormality-label head on the pooled posterior mean (BCE, unknown labels masked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.config import JSONConfig
from core.cxr.layers import Downsample, ResBlock, Upsample, group_norm
from core.errors import ConfigError
from core.metrics.images import ssim_torch


@dataclass(frozen=True)
class CXRVAEConfig(JSONConfig):
    image_size: int = 128
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)  # 2^(len-1) downsampling: 128 px -> 16 x 16
    latent_channels: int = 4
    n_labels: int = 1  # abnormality head outputs; 0 turns the head off
    kl_weight: float = 1e-6
    ssim_weight: float = 0.5
    label_weight: float = 0.1

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    def validate(self) -> None:
        if self.image_size % self.downsample or self.image_size < 16:
            raise ConfigError(
                f"image size {self.image_size} must be at least 16 and divisible by "
                f"{self.downsample} (the VAE's downsampling factor)."
            )


def _stages(chans: list[int], resample: type[nn.Module]) -> tuple[nn.ModuleList, int]:
    """One residual block per resolution, resampling between them; returns the blocks and the
    last width."""
    blocks: list[nn.Module] = []
    c = chans[0]
    for i, c_out in enumerate(chans):
        blocks.append(ResBlock(c, c_out))
        c = c_out
        if i < len(chans) - 1:
            blocks.append(resample(c))
    return nn.ModuleList(blocks), c


class _Encoder(nn.Module):
    def __init__(self, cfg: CXRVAEConfig) -> None:
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = nn.Conv2d(1, chans[0], 3, padding=1)
        self.blocks, c = _stages(chans, Downsample)
        self.mid = ResBlock(c, c)
        self.norm = group_norm(c)
        self.conv_out = nn.Conv2d(c, 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm(h)))


class _Decoder(nn.Module):
    def __init__(self, cfg: CXRVAEConfig) -> None:
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mult][::-1]
        self.conv_in = nn.Conv2d(cfg.latent_channels, chans[0], 3, padding=1)
        self.mid = ResBlock(chans[0], chans[0])
        self.blocks, c = _stages(chans, Upsample)
        self.norm = group_norm(c)
        self.conv_out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for block in self.blocks:
            h = block(h)
        return self.conv_out(F.silu(self.norm(h)))


@dataclass
class VAELosses:
    total: torch.Tensor
    l1: torch.Tensor
    ssim: torch.Tensor
    kl: torch.Tensor
    label: torch.Tensor


class CXRVAE(nn.Module):
    """Images in [-1, 1] ``[B, 1, S, S]`` <-> latents ``[B, C, S/f, S/f]``."""

    def __init__(self, cfg: CXRVAEConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.encoder = _Encoder(cfg)
        self.decoder = _Decoder(cfg)
        self.label_head = nn.Linear(cfg.latent_channels, cfg.n_labels) if cfg.n_labels else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> VAELosses:
        return self.loss(x, labels, generator)

    def loss(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> VAELosses:
        mean, logvar = self.encode(x)
        # drawn on the CPU: the seeded generator lives there, whatever the training device
        noise = torch.randn(mean.shape, generator=generator).to(mean)
        z = mean + torch.exp(0.5 * logvar) * noise
        recon = self.decode(z)
        l1 = (recon - x).abs().mean()
        ssim_term = 1.0 - ssim_torch((recon.clamp(-1, 1) + 1) / 2, (x + 1) / 2).mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2, 3)).mean()
        kl_per_pixel = kl / x[0].numel()
        label_loss = torch.zeros((), device=x.device)
        if self.label_head is not None and labels is not None:
            known = labels >= 0
            if known.any():
                logits = self.label_head(mean.mean(dim=(2, 3)))
                label_loss = F.binary_cross_entropy_with_logits(
                    logits[known], labels[known].to(logits.dtype)
                )
        cfg = self.cfg
        total = (
            l1
            + cfg.ssim_weight * ssim_term
            + cfg.kl_weight * kl_per_pixel  # LDM's weighting: sum-reduced terms over pixels
            + cfg.label_weight * label_loss
        )
        return VAELosses(total, l1.detach(), ssim_term.detach(), kl.detach(), label_loss.detach())
