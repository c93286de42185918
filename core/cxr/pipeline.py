"""DDL-CXR inference: one call from a prior radiograph + EHR window to forecast samples.

Two checkpoints: the VAE (``family = "cxr-vae"``) and the forecaster (``family = "ddl-cxr"``:
EHR encoder + latent UNet + vocabulary). The forecaster's manifest names its VAE folder and that
VAE's sha256, so a forecaster never runs on a latent space it was not trained in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.checkpoints import Manifest, load_checkpoint, load_weights, read_manifest, save_checkpoint
from core.cxr.diffusion import (
    ANCHORS,
    Anchor,
    DiffusionConfig,
    SamplerConfig,
)
from core.cxr.ehr_encoder import EHREncoder, EHREncoderConfig, EHRTokens
from core.cxr.ehr_window import EHRVocabulary, EHRWindow, tokens_from_windows
from core.cxr.unet import LatentUNet, UNetConfig
from core.cxr.vae import CXRVAE, CXRVAEConfig
from core.data.images import FitMode, fit_square
from core.device import make_generator
from core.diffusion.ddpm import ddim_sample, start_step
from core.errors import CheckpointError, ConfigError
from core.progress import ProgressCallback

log = logging.getLogger(__name__)

VAE_FAMILY = "cxr-vae"
FORECAST_FAMILY = "ddl-cxr"
MAX_SAMPLES = 16


@dataclass
class CXRAutoencoder:
    """The VAE plus how images enter it (resolution, fit) and the latent scale factor;
    ``manifest``: the checkpoint's, when loaded from one."""

    vae: CXRVAE
    fit: FitMode = "pad"
    latent_scale: float = 1.0
    manifest: Manifest | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return self.vae.cfg.image_size

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """Any-size [0, 1] image -> model-size [0, 1] image."""
        if pixels.shape == (self.size, self.size):
            return pixels.astype(np.float32)
        return fit_square(pixels, self.size, self.fit)

    @torch.no_grad()
    def encode(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``[B, S, S]`` in [0, 1] -> scaled posterior-mean latents ``[B, C, s, s]``."""
        x = torch.as_tensor(images, dtype=torch.float32, device=self.device)[:, None] * 2 - 1
        mean, _ = self.vae.encode(x)
        return mean * self.latent_scale

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        """Scaled latents -> ``[B, S, S]`` float32 images in [0, 1]."""
        x = self.vae.decode(z.to(self.device) / self.latent_scale)
        return ((x[:, 0].clamp(-1, 1) + 1) / 2).float().cpu().numpy()

    def save(self, folder: str | Path, **manifest: Any) -> Manifest:
        cfg = {"vae": self.vae.cfg.to_json(), "fit": self.fit, "latent_scale": self.latent_scale}
        return save_checkpoint(
            folder,
            self.vae.state_dict(),
            Manifest(model_id=Path(folder).name, family=VAE_FAMILY, config=cfg, **manifest),
        )

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str | None = None) -> CXRAutoencoder:
        """The VAE in ``folder`` (hash-verified), on ``device`` (default CPU)."""
        device = device or "cpu"
        tensors, manifest = load_checkpoint(folder, family=VAE_FAMILY, device=device)
        try:
            cfg = CXRVAEConfig.from_json(manifest.config["vae"])
            fit, scale = manifest.config["fit"], float(manifest.config["latent_scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"Checkpoint '{Path(folder).name}': bad VAE config ({exc})."
            ) from None
        vae = CXRVAE(cfg)
        load_weights(vae, tensors, folder, "VAE")
        return cls(vae.to(device).eval(), fit, scale, manifest)


@dataclass(frozen=True)
class ForecastSettings:
    """One forecast request; ``None`` fields take the model's manifest defaults."""

    horizon_hours: float
    n_samples: int = 4
    steps: int = 25
    eta: float | None = None
    seed: int = 0
    use_ehr: bool = True
    anchor: Anchor | None = None
    strength: float | None = None
    threshold: bool = True


@dataclass(frozen=True)
class CXRForecast:
    """Forecast images, all ``[S, S]`` float32 in [0, 1] (``samples``: ``[n, S, S]``)."""

    prior: np.ndarray
    samples: np.ndarray
    settings: ForecastSettings
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def mean(self) -> np.ndarray:
        return self.samples.mean(axis=0)

    @property
    def uncertainty(self) -> np.ndarray:
        """Per-pixel standard deviation across samples (0 for a single sample)."""
        return self.samples.std(axis=0)

    @property
    def change(self) -> np.ndarray:
        """Forecast mean minus prior: positive where the image gets brighter (more opaque)."""
        return self.mean - self.prior


class DDLCXRForecaster:
    def __init__(
        self,
        autoencoder: CXRAutoencoder,
        encoder: EHREncoder,
        unet: LatentUNet,
        vocabulary: EHRVocabulary,
        diffusion: DiffusionConfig,
        gap_range_hours: tuple[float, float],
        sampler: SamplerConfig | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        self.autoencoder = autoencoder
        self.encoder = encoder
        self.unet = unet
        self.vocabulary = vocabulary
        self.diffusion = diffusion
        self.schedule = diffusion.schedule()
        self.gap_range_hours = gap_range_hours
        self.sampler = sampler or SamplerConfig()
        self.manifest = manifest  # the checkpoint's, when loaded from one

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def context(self, tokens: EHRTokens | None, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if tokens is None:
            return self.unet.null(batch)
        ctx, mask, _ = self.encoder(tokens.to(self.device))
        return ctx, mask

    def validate(self, settings: ForecastSettings) -> None:
        lo, hi = self.gap_range_hours
        h = settings.horizon_hours
        if not np.isfinite(h) or h <= 0:
            raise ConfigError(f"The forecast horizon must be more than 0 hours, got {h:g}.")
        if h > hi:
            raise ConfigError(
                f"The forecast horizon {h:g} h ({h / 24:.1f} days) is beyond what this model was "
                f"trained on ({lo:g} to {hi:g} h, i.e. up to {hi / 24:.0f} days)."
            )
        if not 1 <= settings.n_samples <= MAX_SAMPLES:
            raise ConfigError(
                f"Number of samples must be 1 to {MAX_SAMPLES}, got {settings.n_samples}."
            )
        if settings.anchor is not None and settings.anchor not in ANCHORS:
            raise ConfigError(f"Anchor must be one of {ANCHORS}, got {settings.anchor!r}.")

    def start_step(self, horizon_hours: float, strength: float | None = None) -> int:
        """DDIM start step of a prior-anchored forecast: later for longer gaps, whose expected
        change from the prior is larger, so less of the prior is kept."""
        unit = self.diffusion.residual_scale if self.diffusion.target == "residual" else 1.0
        k = self.sampler.strength if strength is None else strength
        return start_step(self.schedule, k * self.sampler.expected_change(horizon_hours) / unit)

    @torch.no_grad()
    def forecast(
        self,
        prior: np.ndarray,
        window: EHRWindow | None,
        settings: ForecastSettings,
        callback: ProgressCallback | None = None,
    ) -> CXRForecast:
        """Sample ``settings.n_samples`` later images given the prior and the EHR window."""
        self.validate(settings)
        notes: list[str] = list(window.warnings) if window is not None else []
        if window is not None and window.last_hour > settings.horizon_hours:
            # Observations after the forecast time are not known then: leave them out, visibly.
            later = window.frame["hours"] > settings.horizon_hours
            notes.append(
                f"left out {int(later.sum())} observation(s) recorded after the forecast horizon "
                f"of {settings.horizon_hours:g} h"
            )
            window = EHRWindow(window.frame[~later].reset_index(drop=True), window.warnings)
        start = time.perf_counter()
        prior_img = self.autoencoder.prepare(np.asarray(prior, dtype=np.float32))
        n = settings.n_samples
        z_prior = self.autoencoder.encode(prior_img[None]).repeat(n, 1, 1, 1)
        use_ehr = settings.use_ehr and window is not None and window.n_observations > 0
        if settings.use_ehr and not use_ehr:
            notes.append("no usable EHR observations: forecast from the prior image and gap only")
        tokens = (
            tokens_from_windows([window], self.vocabulary, self.encoder.cfg.max_tokens).repeat(n)
            if use_ehr
            else None
        )
        ctx, mask = self.context(tokens, n)
        gap = torch.full((n,), float(settings.horizon_hours), device=self.device)

        def denoise(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.unet(z, z_prior, t, gap, ctx, mask)

        residual = self.diffusion.target == "residual"
        anchor = settings.anchor or self.sampler.anchor
        anchored = anchor == "prior"
        gen = make_generator(settings.seed)
        z = ddim_sample(
            denoise,
            torch.randn(z_prior.shape, generator=gen).to(self.device),
            self.schedule,
            steps=settings.steps,
            eta=self.sampler.eta if settings.eta is None else settings.eta,
            generator=gen,
            callback=callback,
            anchor=(torch.zeros_like(z_prior) if residual else z_prior) if anchored else None,
            t_start=self.start_step(settings.horizon_hours, settings.strength)
            if anchored
            else None,
            x0_bound=self.sampler.x0_bound if settings.threshold else None,
        )
        if residual:
            z = z_prior + self.diffusion.residual_scale * z
        samples = self.autoencoder.decode(z)
        return CXRForecast(prior_img, samples, settings, time.perf_counter() - start, tuple(notes))

    # --- persistence ---------------------------------------------------------------------------
    def save(
        self, folder: str | Path, vae_folder: str | Path, vae_sha256: str, **manifest: Any
    ) -> Manifest:
        tensors = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
        tensors |= {f"unet.{k}": v for k, v in self.unet.state_dict().items()}
        cfg = {
            "vae_checkpoint": Path(vae_folder).name,
            "vae_sha256": vae_sha256,
            "ehr_encoder": self.encoder.cfg.to_json(),
            "unet": self.unet.cfg.to_json(),
            "diffusion": self.diffusion.to_json(),
            "vocabulary": self.vocabulary.to_json(),
            "gap_range_hours": list(self.gap_range_hours),
            "sampler": self.sampler.to_json(),
        }
        return save_checkpoint(
            folder,
            tensors,
            Manifest(model_id=Path(folder).name, family=FORECAST_FAMILY, config=cfg, **manifest),
        )

    @classmethod
    def load(
        cls,
        folder: str | Path,
        device: torch.device | str | None = None,
        vae: str | Path | None = None,
    ) -> DDLCXRForecaster:
        """Load a forecaster and its VAE (on ``device``, default CPU): ``vae`` (a folder), else
        the sibling folder named in the manifest; the VAE's sha256 must match the one the
        forecaster was trained with. The manifest is the model's ``manifest``."""
        folder, device = Path(folder), device or "cpu"
        tensors, manifest = load_checkpoint(folder, family=FORECAST_FAMILY, device=device)
        cfg = manifest.config
        try:
            vae_folder = Path(vae) if vae is not None else folder.parent / cfg["vae_checkpoint"]
            vae_sha = cfg["vae_sha256"]
            enc_cfg = EHREncoderConfig.from_json(cfg["ehr_encoder"])
            unet_cfg = UNetConfig.from_json(cfg["unet"])
            diffusion = DiffusionConfig.from_json(cfg["diffusion"])
            vocab = EHRVocabulary.from_json(cfg["vocabulary"])
            lo, hi = (float(v) for v in cfg["gap_range_hours"])
            sampler = SamplerConfig.from_json(cfg["sampler"]) if "sampler" in cfg else None
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise CheckpointError(
                f"Checkpoint '{folder.name}': bad forecaster config ({exc})."
            ) from None
        if read_manifest(vae_folder).sha256 != vae_sha:
            raise CheckpointError(
                f"Checkpoint '{folder.name}' was trained with VAE '{vae_folder.name}' of another "
                "version (sha256 differs); refusing to mix latent spaces."
            )
        autoencoder = CXRAutoencoder.load(vae_folder, device)
        encoder, unet = EHREncoder(enc_cfg), LatentUNet(unet_cfg)
        load_weights(
            encoder,
            {k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")},
            folder,
            "EHR encoder",
        )
        load_weights(
            unet, {k[5:]: v for k, v in tensors.items() if k.startswith("unet.")}, folder, "UNet"
        )
        return cls(
            autoencoder,
            encoder.to(device).eval(),
            unet.to(device).eval(),
            vocab,
            diffusion,
            (lo, hi),
            sampler,
            manifest,
        )
