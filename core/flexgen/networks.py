"""FLEXGEN-EHR networks: static MLP VAE, temporal LSTM or 1-D CNN VAE, latent noise predictor."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from core.config import JSONConfig
from core.errors import ConfigError

TEMPORAL_KINDS = ("lstm", "cnn")


@dataclass(frozen=True)
class FlexVAEConfig(JSONConfig):
    input_dim: int  # static: vector width; temporal: channels (2 x variables)
    latent_dim: int
    hidden: int = 128
    kind: str = "mlp"  # mlp (static) | lstm | cnn (temporal)
    n_steps: int = 0  # temporal only

    def __post_init__(self) -> None:
        if self.input_dim < 1 or self.latent_dim < 1 or self.hidden < 1:
            raise ConfigError("VAE widths must be positive.")
        if self.kind not in ("mlp", *TEMPORAL_KINDS):
            raise ConfigError(
                f"Unknown VAE kind '{self.kind}'; expected mlp, {', '.join(TEMPORAL_KINDS)}."
            )
        if self.kind == "cnn" and self.n_steps % 4:
            raise ConfigError(
                f"The 1-D CNN VAE halves the series twice; {self.n_steps} steps is not a multiple of 4."
            )


class _Gaussian(nn.Module):
    def __init__(self, width: int, latent: int) -> None:
        super().__init__()
        self.out = nn.Linear(width, 2 * latent)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.out(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per record."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def reparameterise(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``mu + sigma * eps`` with ``eps`` from ``generator`` (drawn where the generator lives), so
    trainings running at once each keep their own reproducible noise."""
    eps = torch.randn(mu.shape, generator=generator, device=generator.device).to(mu.device)
    return mu + eps * (0.5 * logvar).exp()


class _VAE(nn.Module):
    def forward(
        self, x: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(decoder logits of a posterior draw, mu, logvar): one training pass, as DDP wraps it."""
        mu, logvar = self.encode(x)
        return self.decode(reparameterise(mu, logvar, generator)), mu, logvar


class StaticVAE(_VAE):
    """MLP encoder/decoder on the static [0, 1] vector; the decoder returns logits."""

    def __init__(self, config: FlexVAEConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.encoder = nn.Sequential(
            nn.Linear(config.input_dim, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU()
        )
        self.posterior = _Gaussian(h, config.latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, h),
            nn.SiLU(),
            nn.Linear(h, h),
            nn.SiLU(),
            nn.Linear(h, config.input_dim),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.posterior(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class TemporalVAE(_VAE):
    """Encoder/decoder on ``[N, T, 2D]`` (scaled values + observation mask).

    The decoder returns ``[N, T, 2D]`` logits: the first D channels are values (sigmoid -> [0, 1]),
    the last D the probability that the cell is observed.
    """

    def __init__(self, config: FlexVAEConfig) -> None:
        super().__init__()
        if config.kind not in TEMPORAL_KINDS:
            raise ConfigError(f"Temporal VAE kind must be one of {TEMPORAL_KINDS}.")
        if config.n_steps < 1:
            raise ConfigError("Temporal VAE needs the number of grid steps.")
        self.config = config
        c, h, t = config.input_dim, config.hidden, config.n_steps
        if config.kind == "lstm":
            self.enc_rnn = nn.LSTM(c, h, batch_first=True, bidirectional=True)
            self.posterior = _Gaussian(2 * h, config.latent_dim)
            self.dec_in = nn.Linear(config.latent_dim, h)
            self.dec_rnn = nn.LSTM(h + 1, h, batch_first=True)
            self.dec_out = nn.Linear(h, c)
        else:
            self.enc_cnn = nn.Sequential(
                nn.Conv1d(c, h, 3, padding=1),
                nn.SiLU(),
                nn.Conv1d(h, h, 4, stride=2, padding=1),
                nn.SiLU(),
                nn.Conv1d(h, h, 4, stride=2, padding=1),
                nn.SiLU(),
            )
            self.posterior = _Gaussian(h * (t // 4), config.latent_dim)
            self.dec_in = nn.Linear(config.latent_dim, h * (t // 4))
            self.dec_cnn = nn.Sequential(
                nn.SiLU(),
                nn.ConvTranspose1d(h, h, 4, stride=2, padding=1),
                nn.SiLU(),
                nn.ConvTranspose1d(h, h, 4, stride=2, padding=1),
                nn.SiLU(),
                nn.Conv1d(h, c, 3, padding=1),
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.kind == "lstm":
            out, _ = self.enc_rnn(x)
            # Mean over time of both directions: every step informs the latent.
            return self.posterior(out.mean(dim=1))
        h = self.enc_cnn(x.transpose(1, 2))
        return self.posterior(h.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        t = self.config.n_steps
        if self.config.kind == "lstm":
            h = self.dec_in(z)[:, None, :].expand(-1, t, -1)
            clock = torch.linspace(0.0, 1.0, t, device=z.device, dtype=z.dtype)
            inp = torch.cat([h, clock[None, :, None].expand(len(z), -1, 1)], dim=2)
            out, _ = self.dec_rnn(inp)
            return self.dec_out(out)
        h = self.dec_in(z).view(len(z), self.config.hidden, t // 4)
        return self.dec_cnn(h).transpose(1, 2)


def static_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli likelihood on [0, 1] targets (one-hot, flags and scaled numbers), per record."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)


def temporal_loss(logits: torch.Tensor, x: torch.Tensor, value_weight: float) -> torch.Tensor:
    """Masked squared error on observed values plus the mask's cross-entropy, per record.

    ``x`` may hold a fractional mask (kNN-averaged inputs); it then weights the value error.
    """
    d = x.shape[-1] // 2
    values, mask = x[..., :d], x[..., d:]
    pred_values = torch.sigmoid(logits[..., :d])
    value_err = (mask * (pred_values - values).pow(2)).sum(dim=(1, 2))
    mask_err = F.binary_cross_entropy_with_logits(logits[..., d:], mask, reduction="none").sum(
        dim=(1, 2)
    )
    return value_weight * value_err + mask_err


# --- latent noise predictor ---------------------------------------------------------------------
@dataclass(frozen=True)
class DenoiserConfig(JSONConfig):
    dim: int
    hidden: int = 256
    blocks: int = 3
    n_classes: int = 0  # 0 = unconditional; else a null label index n_classes is added
    embed_dim: int = 64


class _ResBlock(nn.Module):
    def __init__(self, width: int, embed: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.emb = nn.Linear(embed, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.fc1(self.norm(h)) + self.emb(e))
        return h + self.fc2(F.silu(y))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class LatentDenoiser(nn.Module):
    """Predicts the noise in a fused latent ``[z_T; z_S]`` at step t, optionally given a label."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        e = config.embed_dim
        self.time = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.label = nn.Embedding(config.n_classes + 1, e) if config.n_classes else None
        self.inp = nn.Linear(config.dim, config.hidden)
        self.blocks = nn.ModuleList(_ResBlock(config.hidden, e) for _ in range(config.blocks))
        self.out = nn.Sequential(nn.LayerNorm(config.hidden), nn.Linear(config.hidden, config.dim))

    @property
    def null_label(self) -> int:
        return self.config.n_classes

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        e = self.time(timestep_embedding(t, self.config.embed_dim))
        if self.label is not None:
            if labels is None:
                labels = torch.full((len(x),), self.null_label, device=x.device, dtype=torch.long)
            e = e + self.label(labels)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)
