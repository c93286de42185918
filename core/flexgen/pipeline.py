"""FLEXGEN-EHR pipeline: a trained model (encoding, two VAEs, latent DDPM); ``generate`` makes
complete synthetic patients: a static row plus a series with its observation mask."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.checkpoints import Manifest, SavedModel, load_checkpoint, load_weights
from core.data.cohort import Cohort
from core.data.records import SUMMARIES, ehr_table
from core.device import make_generator, select_device
from core.diffusion.ddpm import DDPMSchedule, ancestral_sample
from core.diffusion.guidance import classifier_free, network_evaluations_per_step
from core.encoding.constraints import ConstraintSet, constraints_for, summary_groups
from core.encoding.repair import enforce
from core.errors import CheckpointError, ConfigError
from core.flexgen.encoding import FlexGenEncoding
from core.flexgen.networks import (
    DenoiserConfig,
    FlexVAEConfig,
    LatentDenoiser,
    StaticVAE,
    TemporalVAE,
)
from core.generation import (
    SyntheticSet,
    chunks,
    draw_labels,
    synthetic_ids,
    validate_label_settings,
)
from core.progress import ProgressCallback

log = logging.getLogger(__name__)

FAMILY = "flexgen-ehr"
MAX_RECORDS = 50_000  # per call: 50k x 48 x 37 values + mask is ~0.5 GB
CHUNK = 4_096


@dataclass(frozen=True)
class FlexGenSettings:
    n: int
    seed: int = 0
    guidance: float = 1.0
    label_mix: tuple[float, ...] | None = None  # class shares; None = training frequencies
    sampler: str = "ddpm"
    steps: int = 0  # filled with the model's T: ancestral DDPM sampling uses every step

    @property
    def schedule_name(self) -> str:
        return "linear beta (DDPM)"

    def validate(self, model: FlexGenModel) -> None:
        if not isinstance(self.n, int) or not 1 <= self.n <= MAX_RECORDS:
            raise ConfigError(
                f"Number of patients must be between 1 and {MAX_RECORDS:,}, got {self.n!r}."
            )
        validate_label_settings(model.n_classes, self.guidance, self.label_mix)


def tie_observation(
    observed: np.ndarray, variables: tuple[str, ...], constraints: ConstraintSet
) -> np.ndarray:
    """Series variables that are missing together in every training stay (DiasABP and SysABP
    from one arterial line) kept so in ``observed`` [N, T, D]: where the group's first variable
    was measured in a stay and another not, the other is measured at the same steps (its values
    are decoded at every step); where the first was not, neither is the other. Stays that agree
    are left as sampled."""
    index = {v: j for j, v in enumerate(variables)}
    out = observed
    for k in constraints.of_kind("missing_together"):
        tied = [index[v] for v in summary_groups(k.columns) if v in index]
        if len(tied) < 2:
            continue
        if out is observed:
            out = observed.copy()
        lead = tied[0]
        present = out[:, :, lead].any(axis=1)
        for j in tied[1:]:
            has = out[:, :, j].any(axis=1)
            out[present & ~has, :, j] = out[present & ~has, :, lead]
            out[~present & has, :, j] = False
    return out


class FlexGenModel(SavedModel):
    family = FAMILY

    def __init__(
        self,
        encoding: FlexGenEncoding,
        static_vae: StaticVAE,
        temporal_vae: TemporalVAE,
        denoiser: LatentDenoiser,
        schedule: DDPMSchedule,
        latent_mean: np.ndarray,
        latent_std: np.ndarray,
        model_id: str,
        class_prior: tuple[float, ...] = (),
        manifest: Manifest | None = None,
        training: dict | None = None,
        constraints: ConstraintSet | None = None,
    ) -> None:
        self.encoding = encoding
        # The training records' logic (core.encoding.constraints); None for a model stored
        # before constraints existed, which decodes with the rules its column names imply.
        self.constraints = constraints
        self.static_vae = static_vae.eval()
        self.temporal_vae = temporal_vae.eval()
        self.denoiser = denoiser.eval()
        self.schedule = schedule
        self.latent_mean = np.asarray(latent_mean, dtype=np.float32)
        self.latent_std = np.asarray(latent_std, dtype=np.float32)
        self.model_id = model_id
        self.class_prior = class_prior
        self.manifest = manifest
        self.training = training or {}  # alignment summary, variant, losses: for the model card

    @property
    def n_classes(self) -> int:
        return self.denoiser.config.n_classes

    @property
    def temporal_latent(self) -> int:
        return self.temporal_vae.config.latent_dim

    @property
    def decoding_constraints(self) -> ConstraintSet:
        """The rules every generated record is made to satisfy."""
        if self.constraints is not None:
            return self.constraints
        static = [c.name for c in self.encoding.static.columns]
        series = [f"{v}_{s}" for v in self.encoding.temporal.variables for s in SUMMARIES]
        return constraints_for(None, static + series)

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def to(self, device: torch.device | str) -> FlexGenModel:
        for net in (self.static_vae, self.temporal_vae, self.denoiser):
            net.to(device)
        return self

    def check_compatible(self, cohort: Cohort) -> None:
        self.encoding.check_compatible(cohort)  # columns and grid: the same for any split

    # --- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def decode_latents(
        self, z: torch.Tensor, generator: torch.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fused latents -> (static [0, 1] vectors, scaled values, sampled observation mask)."""
        d_t = self.temporal_latent
        static = torch.sigmoid(self.static_vae.decode(z[:, d_t:])).float().cpu().numpy()
        out = self.temporal_vae.decode(z[:, :d_t]).float().cpu()
        d = out.shape[-1] // 2
        values = torch.sigmoid(out[..., :d]).numpy()
        # Observation is sampled per cell: the decoder gives its probability, not a threshold.
        observed = torch.bernoulli(torch.sigmoid(out[..., d:]), generator=generator).bool().numpy()
        return static, values, observed

    @torch.no_grad()
    def generate(
        self, settings: FlexGenSettings, callback: ProgressCallback | None = None
    ) -> SyntheticSet:
        """``settings.n`` complete synthetic patients: static row + series + observation mask."""
        settings.validate(self)
        start = time.perf_counter()
        device = self.device
        gen = make_generator(settings.seed, "cpu")
        labels = draw_labels(settings.n, self.n_classes, settings.label_mix, self.class_prior, gen)
        mean = torch.as_tensor(self.latent_mean, device=device)
        std = torch.as_tensor(self.latent_std, device=device)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for chunk in chunks(settings.n, CHUNK, self.schedule.steps, callback):
            noise = torch.randn(len(chunk), len(self.latent_mean), generator=gen).to(device)
            lab = None if labels is None else labels[chunk.start : chunk.stop].to(device)
            denoise = classifier_free(
                self.denoiser, lab, self.denoiser.null_label, settings.guidance
            )
            z = ancestral_sample(
                denoise, noise, self.schedule, generator=gen, callback=chunk.callback
            )
            parts.append(self.decode_latents(z * std + mean, gen))
        static01 = np.concatenate([p[0] for p in parts])
        scaled = np.concatenate([p[1] for p in parts])
        rules = self.decoding_constraints
        observed = tie_observation(
            np.concatenate([p[2] for p in parts]), self.encoding.temporal.variables, rules
        )
        ids = synthetic_ids(settings.n)
        label_np = None if labels is None else labels.numpy().astype(np.int64)
        static = self.encoding.static.decode(static01, ids)  # table with its feature specs
        cohort = Cohort(
            name=f"{self.model_id} synthetic",
            record_ids=ids,
            patient_ids=ids.copy(),
            static=static.static,
            static_features=static.static_features,
            temporal=self.encoding.decode_temporal(scaled, observed),
            labels=label_np,
            label_name=self.encoding.label_name,
            label_classes=self.encoding.label_classes,
            source=f"FLEXGEN-EHR model {self.model_id}",
        )
        seconds = time.perf_counter() - start
        log.info("generated %d patients in %.2fs", settings.n, seconds)
        done = FlexGenSettings(
            settings.n,
            settings.seed,
            settings.guidance,
            settings.label_mix,
            steps=self.schedule.steps,
        )
        return SyntheticSet(
            table=enforce(ehr_table(cohort), rules),
            vectors=static01,
            model_id=self.model_id,
            settings=done,
            seconds=seconds,
            network_evaluations=self.schedule.steps
            * network_evaluations_per_step(labels, settings.guidance),
            checkpoint_sha256=self.manifest.sha256 if self.manifest else "",
            cohort=cohort,
        )

    # --- persistence -----------------------------------------------------------------------------
    def config_json(self) -> dict:
        return {
            "encoding": self.encoding.to_json(),
            "static_vae": self.static_vae.config.to_json(),
            "temporal_vae": self.temporal_vae.config.to_json(),
            "denoiser": self.denoiser.config.to_json(),
            "ddpm": self.schedule.to_json(),
            "class_prior": list(self.class_prior),
            "training": self.training,
            **({} if self.constraints is None else {"constraints": self.constraints.to_json()}),
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"static_vae.{k}": v for k, v in self.static_vae.state_dict().items()}
        out |= {f"temporal_vae.{k}": v for k, v in self.temporal_vae.state_dict().items()}
        out |= {f"denoiser.{k}": v for k, v in self.denoiser.state_dict().items()}
        # Latent standardisation: aggregates over the training latents, not patient values.
        out["latent.mean"] = torch.as_tensor(self.latent_mean)
        out["latent.std"] = torch.as_tensor(self.latent_std)
        return out

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str | None = None) -> FlexGenModel:
        device = torch.device(device) if device is not None else select_device()
        tensors, manifest = load_checkpoint(folder, family=FAMILY, device="cpu")
        cfg = manifest.config
        name = Path(folder).name
        try:
            encoding = FlexGenEncoding.from_json(cfg["encoding"])
            static_vae = StaticVAE(FlexVAEConfig.from_json(cfg["static_vae"]))
            temporal_vae = TemporalVAE(FlexVAEConfig.from_json(cfg["temporal_vae"]))
            denoiser = LatentDenoiser(DenoiserConfig.from_json(cfg["denoiser"]))
            schedule = DDPMSchedule.from_json(cfg["ddpm"])
            mean, std = tensors.pop("latent.mean"), tensors.pop("latent.std")
            constraints = (
                ConstraintSet.from_json(cfg["constraints"]) if cfg.get("constraints") else None
            )
        except (KeyError, TypeError, ConfigError) as exc:
            raise CheckpointError(f"Checkpoint '{name}': incomplete config ({exc}).") from None
        for prefix, net in (
            ("static_vae.", static_vae),
            ("temporal_vae.", temporal_vae),
            ("denoiser.", denoiser),
        ):
            part = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            load_weights(net, part, folder, prefix[:-1])
        if encoding.static_dim != static_vae.config.input_dim or (
            encoding.temporal_channels != temporal_vae.config.input_dim
        ):
            raise CheckpointError(f"Checkpoint '{name}': encoding and VAE widths differ.")
        model = cls(
            encoding,
            static_vae,
            temporal_vae,
            denoiser,
            schedule,
            mean.numpy(),
            std.numpy(),
            manifest.model_id,
            tuple(cfg.get("class_prior", ())),
            manifest,
            cfg.get("training"),
            constraints,
        )
        return model.to(device)
