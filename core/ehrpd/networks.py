"""The three parts of the model, sharing one history context per visit position.

- :class:`HistoryEncoder`: causal Transformer over ``[START(label), visit_0, ..., visit_{V-1}]``;
  each visit token is its codes' projection plus an embedding of its (log) gap and position, so
  output ``k`` summarises the visits before visit ``k`` and when they happened.
- :class:`NextVisitDenoiser`: for visit ``k``'s code vector (scaled to [-1, 1]) noised to a
  diffusion step, the logits of the clean codes given the step and context ``k``. Predicting the
  clean 0/1 vector with a cross-entropy loss (rather than epsilon with a squared error) keeps each
  code's probability calibrated on sparse visits: with epsilon prediction the eICU demo's
  synthetic visits held 9.6 codes against 4.6 real ones. Samplers get epsilon from it by
  :func:`epsilon_from_logits`.
- gap and stop heads on context ``k``: a Gaussian over visit ``k``'s standardised log gap, and the
  logit that there is no visit ``k`` (the sequence ended).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from core.config import JSONConfig
from core.diffusion.ddpm import DDPMSchedule
from core.errors import ConfigError


@dataclass(frozen=True)
class EHRPDConfig(JSONConfig):
    dim: int  # code vector width
    max_visits: int
    n_classes: int = 0
    d_model: int = 128
    layers: int = 2
    heads: int = 4
    denoiser_hidden: int = 256
    denoiser_blocks: int = 3

    def __post_init__(self) -> None:
        if self.dim < 1 or self.max_visits < 1:
            raise ConfigError("EHRPD needs at least one code and one visit.")
        if self.d_model % self.heads:
            raise ConfigError(f"d_model {self.d_model} must be divisible by heads {self.heads}.")

    @property
    def null_label(self) -> int:
        return self.n_classes


def _sinusoid(x: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=x.device) / half)
    args = x.float()[..., None] * freqs
    return torch.cat([args.sin(), args.cos()], dim=-1)


class HistoryEncoder(nn.Module):
    def __init__(self, cfg: EHRPDConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.codes = nn.Linear(cfg.dim, d)
        self.gap = nn.Sequential(nn.Linear(d + 1, d), nn.SiLU(), nn.Linear(d, d))
        self.position = nn.Embedding(cfg.max_visits + 1, d)
        self.start = nn.Embedding(cfg.n_classes + 1, d)  # label (or the null label) starts it
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def forward(
        self, visits: torch.Tensor, gaps: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, K, D) visits and (B, K) standardised gaps (NaN = unknown) -> (B, K + 1, d)
        contexts; context ``k`` sees visits ``< k``."""
        b, k = visits.shape[:2]
        if labels is None:
            labels = torch.full((b,), self.cfg.null_label, device=visits.device, dtype=torch.long)
        known = torch.isfinite(gaps)
        g = torch.where(known, gaps, torch.zeros_like(gaps))
        gap_in = torch.cat([_sinusoid(g, self.cfg.d_model), known.float()[..., None]], dim=-1)
        tokens = self.codes(visits) + self.gap(gap_in)
        seq = torch.cat([self.start(labels)[:, None], tokens], dim=1)
        seq = seq + self.position(torch.arange(k + 1, device=visits.device))[None]
        mask = torch.triu(torch.ones(k + 1, k + 1, dtype=torch.bool, device=visits.device), 1)
        return self.norm(self.transformer(seq, mask=mask, is_causal=True))


class _Block(nn.Module):
    """Residual MLP block with the condition (history + step) added to every block's input."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.cond = nn.Linear(width, width)
        self.net = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return h + self.net(self.norm(h) + self.cond(cond))


class NextVisitDenoiser(nn.Module):
    def __init__(self, cfg: EHRPDConfig) -> None:
        super().__init__()
        w = cfg.denoiser_hidden
        self.inp = nn.Linear(cfg.dim, w)
        self.cond = nn.Sequential(nn.Linear(cfg.d_model + 64, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(_Block(w) for _ in range(cfg.denoiser_blocks))
        self.out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, cfg.dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        cond = self.cond(torch.cat([context, _sinusoid(t, 64)], dim=-1))
        h = self.inp(x) + cond
        for block in self.blocks:
            h = block(h, cond)
        return self.out(h)


class EHRPDNet(nn.Module):
    """History encoder, next-visit denoiser, gap head and stop head in one module (one DDP wrap)."""

    def __init__(self, cfg: EHRPDConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.history = HistoryEncoder(cfg)
        self.denoiser = NextVisitDenoiser(cfg)
        self.gap_head = nn.Linear(cfg.d_model, 2)  # mean, log std of the standardised log gap
        self.stop_head = nn.Linear(cfg.d_model, 1)

    def gap_distribution(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.gap_head(context).unbind(-1)
        return mean, log_std.clamp(-4.0, 3.0)

    def forward(
        self,
        visits: torch.Tensor,
        gaps: torch.Tensor,
        lengths: torch.Tensor,
        labels: torch.Tensor | None,
        schedule: DDPMSchedule,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training losses on a padded batch (so DistributedDataParallel sees one forward): the
        clean-code cross-entropy of every real visit given its history and a noised copy of it,
        Gaussian NLL of every known gap, and the stop head's cross-entropy at every position
        after the first visit."""
        b, v = visits.shape[:2]
        ctx = self.history(visits, gaps, labels)
        pos = torch.arange(v, device=visits.device)[None].expand(b, v)
        real = pos < lengths[:, None]
        target = visits[real]
        context = ctx[:, :v][real]
        t = torch.randint(
            0, schedule.steps, (len(target),), device=visits.device, generator=generator
        )
        noise = torch.randn(target.shape, device=visits.device, generator=generator)
        noisy = schedule.q_sample(2.0 * target - 1.0, t, noise)
        logits = self.denoiser(noisy, t, context)
        diffusion = F.binary_cross_entropy_with_logits(logits, target)
        with_gap = real & (pos > 0) & torch.isfinite(gaps)
        mean, log_std = self.gap_distribution(ctx[:, :v][with_gap])
        z = (gaps[with_gap] - mean) / log_std.exp()
        gap = (log_std + 0.5 * z**2).mean() if with_gap.any() else ctx.sum() * 0.0
        ask = (pos >= 1) & (pos <= lengths[:, None]) & (pos < v)  # "is there a visit k?"
        ended = (pos == lengths[:, None]).float()
        logits = self.stop_head(ctx[:, :v]).squeeze(-1)
        stop = (
            F.binary_cross_entropy_with_logits(logits[ask], ended[ask])
            if ask.any()
            else ctx.sum() * 0.0
        )
        return {"diffusion": diffusion, "gap": gap, "stop": stop}


def epsilon_from_logits(
    logits: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, alpha_bars: torch.Tensor
) -> torch.Tensor:
    """The epsilon implied by predicted clean-code logits at step ``t`` (for DDIM)."""
    ab = alpha_bars[t].view(-1, 1)
    x0 = 2.0 * torch.sigmoid(logits) - 1.0
    return (x_t - ab.sqrt() * x0) / (1.0 - ab).sqrt()
