"""MLP denoiser with a Fourier time embedding and optional label embedding.

The hidden widths follow EHRDiff's "units" list (the paper uses [1024, 384, 384, 384, 1024]).
Layers whose widths mirror each other around the middle are joined by additive skip connections,
and every layer receives the noise-level (and label) embedding, so the network stays a plain
stack of matrix multiplies: batched, no per-record Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.config import JSONConfig


@dataclass(frozen=True)
class NetworkConfig(JSONConfig):
    dim: int
    units: tuple[int, ...] = (1024, 384, 384, 384, 1024)
    embed_dim: int = 128
    n_classes: int = 0  # 0 = unconditional; otherwise labels 0..n_classes-1, index n_classes = null
    dropout: float = 0.0


class FourierEmbedding(nn.Module):
    """Sinusoidal features of the scalar noise input at log-spaced frequencies, then an MLP."""

    def __init__(self, out_dim: int, n_freq: int = 64, max_period: float = 10_000.0) -> None:
        super().__init__()
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(n_freq, dtype=torch.float32) / n_freq
        )
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_freq, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # c_noise = ln(sigma)/4 lies in about [-2, 1]; scale up so the frequencies resolve it.
        args = (t.float() * 250.0)[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=1))


class EHRDiffMLP(nn.Module):
    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        e = config.embed_dim
        self.time_embed = FourierEmbedding(e)
        self.label_embed = nn.Embedding(config.n_classes + 1, e) if config.n_classes > 0 else None
        widths = (config.dim, *config.units)
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.cond = nn.ModuleList(nn.Linear(e, b) for b in config.units)
        self.norms = nn.ModuleList(nn.LayerNorm(b) for b in config.units)
        self.act = nn.SiLU()
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.units[-1], config.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # Skip i -> j for mirrored layers of equal width (first with last, ...).
        n = len(config.units)
        self.skips = {
            n - 1 - i: i for i in range(n // 2) if config.units[i] == config.units[n - 1 - i]
        }

    @property
    def null_label(self) -> int:
        return self.config.n_classes

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``c_noise`` holds one value per row, or one for the whole batch (sampling)."""
        cond_rows, index = self._conditioning(x, c_noise, labels)
        # Inference may overwrite activations in place; autograd needs them kept.
        inplace = not torch.is_grad_enabled()
        h = x
        saved: dict[int, torch.Tensor] = {}
        for i, (layer, cond, norm) in enumerate(
            zip(self.layers, self.cond, self.norms, strict=True)
        ):
            # The conditioning is evaluated once per distinct (noise level, label), not per row,
            # and enters the matrix multiply as its bias.
            bias = layer.bias + cond(cond_rows)
            if index is not None:
                bias = bias[index]
            h = torch.addmm(bias, h, layer.weight.t())
            if i in self.skips:
                h = h.add_(saved[self.skips[i]]) if inplace else h + saved[self.skips[i]]
            h = F.layer_norm(h, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            h = self.drop(F.silu(h, inplace=inplace))
            saved[i] = h
        return self.out(h)

    def _conditioning(
        self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Activated embeddings of the distinct conditions, and each row's index into them (None:
        one row per record, or one row for all)."""
        c_noise = c_noise.reshape(-1)
        if self.label_embed is None:
            labels = None
        elif labels is None:
            labels = torch.full((x.shape[0],), self.null_label, device=x.device, dtype=torch.long)
        index = None
        # One row has one condition already; skipping unique also keeps the per-example
        # gradients of DP training (torch.func.vmap over single rows) free of torch.unique.
        if len(c_noise) == 1 and labels is not None and x.shape[0] > 1:
            labels, index = torch.unique(labels, return_inverse=True)
        emb = self.time_embed(c_noise)
        if labels is not None:
            emb = emb + self.label_embed(labels)
        return self.act(emb), index
