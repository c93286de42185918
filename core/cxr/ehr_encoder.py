"""Transformer encoder of an irregular EHR window (DDL-CXR's EHR branch).

Each observation is one token: embedding(value) + embedding(variable) + embedding(hours since the
prior image). A learned CLS token summarises the window; padded tokens are masked out of attention.
The encoder returns every token (the UNet cross-attends to them) and the CLS vector, which feeds
an auxiliary outcome head during training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.config import JSONConfig
from core.cxr.layers import sinusoidal


@dataclass(frozen=True)
class EHREncoderConfig(JSONConfig):
    n_variables: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.1
    n_labels: int = 1
    max_tokens: int = 512


@dataclass
class EHRTokens:
    """A padded batch of EHR windows: ``[B, L]`` each; ``mask`` is True where a token is real."""

    values: torch.Tensor
    variables: torch.Tensor
    hours: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> EHRTokens:
        return EHRTokens(
            *(t.to(device) for t in (self.values, self.variables, self.hours, self.mask))
        )

    def take(self, rows: np.ndarray | torch.Tensor) -> EHRTokens:
        """The windows at ``rows`` (a training batch)."""
        return EHRTokens(*(t[rows] for t in (self.values, self.variables, self.hours, self.mask)))

    def repeat(self, n: int) -> EHRTokens:
        return EHRTokens(
            *(t.repeat(n, 1) for t in (self.values, self.variables, self.hours, self.mask))
        )


class EHREncoder(nn.Module):
    def __init__(self, cfg: EHREncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.value = nn.Sequential(nn.Linear(1, d), nn.SiLU(), nn.Linear(d, d))
        self.variable = nn.Embedding(cfg.n_variables, d)
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, cfg.n_heads, 4 * d, cfg.dropout, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.label_head = nn.Linear(d, cfg.n_labels) if cfg.n_labels else None

    def forward(self, tokens: EHRTokens) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (tokens ``[B, 1+L, d]``, their validity mask ``[B, 1+L]``, CLS ``[B, d]``)."""
        b = tokens.values.shape[0]
        # log-scaled hours: a window spans hours to weeks
        time_feat = sinusoidal(torch.log1p(tokens.hours.clamp(min=0)) * 100.0, self.cfg.d_model)
        h = (
            self.value(tokens.values[..., None].float())
            + self.variable(tokens.variables.long())
            + self.time(time_feat)
        )
        h = torch.cat([self.cls.expand(b, -1, -1), h], dim=1)
        mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=h.device), tokens.mask], dim=1)
        h = self.norm(self.transformer(h, src_key_padding_mask=~mask))
        return h, mask, h[:, 0]

    def label_logits(self, cls: torch.Tensor) -> torch.Tensor | None:
        return self.label_head(cls) if self.label_head is not None else None
