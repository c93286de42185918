"""Conditional latent UNet of DDL-CXR.

Input: ``[noisy z_t1 ; z_t0]`` concatenated on channels. Conditioning: the diffusion step and the
time gap between the images (sinusoidal embeddings, added in every residual block) and the EHR
tokens, read by cross-attention in transformer blocks at the configured resolutions. A learned
null context stands in for "no EHR" (trained by dropping the EHR with a small probability).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from core.config import JSONConfig
from core.cxr.layers import Downsample, ResBlock, Upsample, group_norm, sinusoidal


@dataclass(frozen=True)
class UNetConfig(JSONConfig):
    latent_channels: int = 4
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2)
    attention_levels: tuple[int, ...] = (1,)
    num_res_blocks: int = 1
    context_dim: int = 64
    n_heads: int = 4
    dropout: float = 0.0


class CrossAttentionBlock(nn.Module):
    """Self-attention over latent positions, then cross-attention to the EHR tokens, then MLP."""

    def __init__(self, channels: int, context_dim: int, n_heads: int) -> None:
        super().__init__()
        heads = max(1, min(n_heads, channels // 16))
        self.norm = group_norm(channels)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.ln1 = nn.LayerNorm(channels)
        self.self_attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(channels)
        self.cross_attn = nn.MultiheadAttention(
            channels, heads, kdim=context_dim, vdim=context_dim, batch_first=True
        )
        self.ln3 = nn.LayerNorm(channels)
        self.ff = nn.Sequential(
            nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels)
        )
        self.proj_out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor
    ) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)  # [B, HW, C]
        q = self.ln1(h)
        h = h + self.self_attn(q, q, q, need_weights=False)[0]
        h = (
            h
            + self.cross_attn(
                self.ln2(h), context, context, key_padding_mask=~context_mask, need_weights=False
            )[0]
        )
        h = h + self.ff(self.ln3(h))
        return x + self.proj_out(h.transpose(1, 2).reshape(b, c, hgt, wid))


class _Level(nn.Module):
    def __init__(self, res: list[ResBlock], attn: list[CrossAttentionBlock | None]) -> None:
        super().__init__()
        self.res = nn.ModuleList(res)
        self.attn = nn.ModuleList([a if a is not None else nn.Identity() for a in attn])


class LatentUNet(nn.Module):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.base_channels
        emb = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.gap_mlp = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.null_context = nn.Parameter(torch.randn(1, 1, cfg.context_dim) * 0.02)
        self.conv_in = nn.Conv2d(2 * cfg.latent_channels, ch, 3, padding=1)
        chans = [ch * m for m in cfg.channel_mult]

        def attn(level: int, c: int) -> CrossAttentionBlock | None:
            if level in cfg.attention_levels:
                return CrossAttentionBlock(c, cfg.context_dim, cfg.n_heads)
            return None

        self.down = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        skips = [ch]
        c = ch
        for level, c_out in enumerate(chans):
            res, att = [], []
            for _ in range(cfg.num_res_blocks):
                res.append(ResBlock(c, c_out, emb, cfg.dropout))
                att.append(attn(level, c_out))
                c = c_out
                skips.append(c)
            self.down.append(_Level(res, att))
            if level < len(chans) - 1:
                self.downsamplers.append(Downsample(c))
                skips.append(c)
        self.mid1 = ResBlock(c, c, emb, cfg.dropout)
        self.mid_attn = CrossAttentionBlock(c, cfg.context_dim, cfg.n_heads)
        self.mid2 = ResBlock(c, c, emb, cfg.dropout)
        self.up = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level in reversed(range(len(chans))):
            res, att = [], []
            for _ in range(cfg.num_res_blocks + 1):
                res.append(ResBlock(c + skips.pop(), chans[level], emb, cfg.dropout))
                att.append(attn(level, chans[level]))
                c = chans[level]
            self.up.append(_Level(res, att))
            if level > 0:
                self.upsamplers.append(Upsample(c))
        self.norm_out = group_norm(c)
        self.conv_out = nn.Conv2d(c, cfg.latent_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def null(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned "no EHR" context and its mask."""
        ctx = self.null_context.expand(batch, -1, -1)
        return ctx, torch.ones(batch, 1, dtype=torch.bool, device=ctx.device)

    def forward(
        self,
        z_t: torch.Tensor,
        z_prior: torch.Tensor,
        t: torch.Tensor,
        gap_hours: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor,
    ) -> torch.Tensor:
        ch = self.cfg.base_channels
        # gap on a log scale: hours to weeks matter alike
        gap_feat = sinusoidal(torch.log1p(gap_hours.clamp(min=0)) * 100.0 / math.log(1e4), ch)
        emb = self.time_mlp(sinusoidal(t, ch)) + self.gap_mlp(gap_feat)
        h = self.conv_in(torch.cat([z_t, z_prior], dim=1))
        hs = [h]
        for i, level in enumerate(self.down):
            for res, att in zip(level.res, level.attn, strict=True):
                h = res(h, emb)
                h = att(h, context, context_mask) if isinstance(att, CrossAttentionBlock) else h
                hs.append(h)
            if i < len(self.downsamplers):
                h = self.downsamplers[i](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb), context, context_mask), emb)
        for i, level in enumerate(self.up):
            for res, att in zip(level.res, level.attn, strict=True):
                h = res(torch.cat([h, hs.pop()], dim=1), emb)
                h = att(h, context, context_mask) if isinstance(att, CrossAttentionBlock) else h
            if i < len(self.upsamplers):
                h = self.upsamplers[i](h)
        return self.conv_out(torch.nn.functional.silu(self.norm_out(h)))
