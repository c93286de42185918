"""EHRDiff pipeline: one trained model with its feature encoding; ``generate`` is the entry call."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from core.checkpoints import Manifest, load_checkpoint, load_weights, save_checkpoint
from core.data.cohort import Cohort
from core.device import make_generator, select_device
from core.ehr import samplers
from core.ehr.edm import EDMConfig, EDMDenoiser
from core.data.encoding import VectorEncoding
from core.ehr.network import EHRDiffMLP, NetworkConfig
from core.data.records import EHRTable
from core.errors import CheckpointError, ConfigError
from core.progress import ProgressCallback

log = logging.getLogger(__name__)

FAMILY = "ehrdiff"
MAX_RECORDS = 200_000  # per call: 200k x ~2k dims float32 is ~1.6 GB of output, safe on 8 GB
CHUNK = 8_192


@dataclass(frozen=True)
class GenerationSettings:
    n: int
    sampler: str = "dpmpp_2m"
    steps: int = 16
    seed: int = 0
    guidance: float = 1.0
    label_mix: tuple[float, ...] | None = None  # class probabilities; None = training frequencies
    schedule: str | None = None  # a key of samplers.SCHEDULES; None = the sampler's default

    @property
    def schedule_name(self) -> str:
        return self.schedule or samplers.DEFAULT_SCHEDULE.get(self.sampler, "edm")

    def validate(self, model: EHRDiffModel) -> None:
        if not isinstance(self.n, int) or self.n <= 0:
            raise ConfigError(f"Number of records must be a positive integer, got {self.n!r}.")
        if self.n > MAX_RECORDS:
            raise ConfigError(
                f"At most {MAX_RECORDS:,} records per generation (memory-safe limit); asked for {self.n:,}."
            )
        if self.sampler not in samplers.SAMPLERS:
            raise ConfigError(
                f"Unknown sampler '{self.sampler}'; choose one of {samplers.SAMPLERS}."
            )
        if self.schedule is not None and self.schedule not in samplers.SCHEDULES:
            raise ConfigError(
                f"Unknown noise schedule '{self.schedule}'; choose one of {tuple(samplers.SCHEDULES)}."
            )
        if not 1 <= self.steps <= 1000:
            raise ConfigError(f"Steps must be between 1 and 1000, got {self.steps}.")
        validate_label_settings(model.n_classes, self.guidance, self.label_mix)


def validate_label_settings(
    n_classes: int, guidance: float, label_mix: tuple[float, ...] | None
) -> None:
    """Guidance scale and label mix of a (possibly) label-conditional generator."""
    if n_classes == 0 and (guidance != 1.0 or label_mix is not None):
        raise ConfigError(
            "Guidance and label mix need a label-conditional model; this model has no label."
        )
    if not 0.0 <= guidance <= 10.0:
        raise ConfigError(f"Guidance scale must be between 0 and 10, got {guidance}.")
    if label_mix is not None:
        mix = np.asarray(label_mix, dtype=float)
        if len(mix) != n_classes or (mix < 0).any() or not np.isclose(mix.sum(), 1.0):
            raise ConfigError(f"Label mix must be {n_classes} non-negative shares summing to 1.")


class SamplingSettings(Protocol):
    """What any generator's settings state about a synthetic set (for provenance)."""

    n: int
    sampler: str
    steps: int
    seed: int
    guidance: float

    @property
    def schedule_name(self) -> str: ...


@dataclass(frozen=True, eq=False)
class SyntheticSet:
    """A synthetic dataset with everything needed to reproduce and audit it.

    ``settings`` is set only when a model sampled the set; uploads and baselines carry ``None``
    and say what they are in ``origin`` (a file's name and sha256, a baseline's definition).
    """

    table: EHRTable
    vectors: np.ndarray  # encoded [0, 1] vectors, as compared by the dimension-wise metrics
    model_id: str  # the model, or what else made the set ("uploaded file x.csv")
    settings: SamplingSettings | None
    seconds: float
    network_evaluations: int
    checkpoint_sha256: str = ""
    extra: dict = field(default_factory=dict)
    cohort: Cohort | None = None  # static + temporal records, for generators that make series
    origin: dict = field(default_factory=dict)

    @property
    def provenance(self) -> dict:
        """What the report and release manifest state about where the set came from: exactly
        what its producer recorded, and no sampler for a set no model sampled."""
        out: dict = {"source": self.model_id}
        if self.settings is not None:
            out |= {
                "checkpoint sha256": self.checkpoint_sha256 or "n/a",
                "sampler": self.settings.sampler,
                "steps": self.settings.steps,
                "schedule": self.settings.schedule_name,
                "seed": self.settings.seed,
                "guidance": self.settings.guidance,
            }
        return out | self.origin


class EHRDiffModel:
    def __init__(
        self,
        denoiser: EDMDenoiser,
        encoding: VectorEncoding,
        model_id: str,
        class_prior: tuple[float, ...] = (),
        manifest: Manifest | None = None,
        data_mean: np.ndarray | None = None,
    ) -> None:
        self.denoiser = denoiser.eval()
        self.encoding = encoding
        self.model_id = model_id
        self.class_prior = class_prior
        self.manifest = manifest
        self.data_mean = None if data_mean is None else np.asarray(data_mean, dtype=np.float64)

    @property
    def n_classes(self) -> int:
        return self.denoiser.net.config.n_classes

    @property
    def reference_means(self) -> np.ndarray | None:
        """Per-dimension means of the training vectors (an aggregate, stored in the checkpoint)."""
        return self.data_mean

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def to(self, device: torch.device | str) -> EHRDiffModel:
        self.denoiser.to(device)
        return self

    # --- generation --------------------------------------------------------------------------
    def _denoise_fn(self, labels: torch.Tensor | None, guidance: float) -> samplers.Denoise:
        net = self.denoiser

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            if labels is None or guidance == 0.0:
                return net(x, sigma, None)
            if guidance == 1.0:
                return net(x, sigma, labels)
            # Classifier-free guidance: one batched call for the conditional and null labels.
            null = torch.full_like(labels, net.net.null_label)
            both = net(torch.cat([x, x]), sigma, torch.cat([labels, null]))
            cond, uncond = both.chunk(2)
            return uncond + guidance * (cond - uncond)

        return denoise

    @torch.no_grad()
    def generate_vectors(
        self, settings: GenerationSettings, callback: ProgressCallback | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        settings.validate(self)
        device = self.device
        gen = make_generator(settings.seed, "cpu")  # CPU noise: identical samples on any device
        labels = None
        if self.n_classes > 0:
            mix = np.asarray(settings.label_mix or self.class_prior, dtype=np.float64)
            mix = mix / mix.sum()
            labels = torch.multinomial(
                torch.as_tensor(mix), settings.n, replacement=True, generator=gen
            )
        schedule = samplers.SCHEDULES[settings.schedule_name]
        sigma_max = min(schedule.sigma_max, self.denoiser.edm.sigma_max)
        sigmas = samplers.karras_sigmas(
            settings.steps, self.denoiser.edm.sigma_min, sigma_max, schedule.rho, device=device
        )
        start_mean = None
        if self.data_mean is not None:
            start_mean = torch.as_tensor(self.data_mean, dtype=torch.float32, device=device)
        chunks = range(0, settings.n, CHUNK)
        total = len(chunks) * settings.steps
        out = []
        for k, start in enumerate(chunks):
            stop = min(start + CHUNK, settings.n)
            noise = torch.randn(stop - start, self.encoding.dim, generator=gen).to(device)
            lab = None if labels is None else labels[start:stop].to(device)
            step_cb = (
                None
                if callback is None
                else (lambda i, _n, k=k: callback(k * settings.steps + i, total))
            )
            x = samplers.sample(
                settings.sampler,
                self._denoise_fn(lab, settings.guidance),
                noise,
                sigmas,
                step_cb,
                start_mean,
            )
            out.append(x.clamp(0.0, 1.0).float().cpu())
        vectors = torch.cat(out).numpy()
        return vectors, None if labels is None else labels.numpy().astype(np.int64)

    def generate(
        self, settings: GenerationSettings, callback: ProgressCallback | None = None
    ) -> SyntheticSet:
        """Generate ``settings.n`` synthetic records, decoded to the training table's columns."""
        start = time.perf_counter()
        vectors, labels = self.generate_vectors(settings, callback)
        ids = np.asarray([f"syn-{i:06d}" for i in range(settings.n)], dtype=object)
        table = self.encoding.decode(vectors, ids, labels)
        seconds = time.perf_counter() - start
        evals = samplers.network_evaluations(settings.sampler, settings.steps)
        log.info("generated %d records in %.2fs (%d evaluations)", settings.n, seconds, evals)
        return SyntheticSet(
            table=table,
            vectors=vectors,
            model_id=self.model_id,
            settings=settings,
            seconds=seconds,
            network_evaluations=evals,
            checkpoint_sha256=self.manifest.sha256 if self.manifest else "",
        )

    # --- persistence ---------------------------------------------------------------------------
    def config_json(self) -> dict:
        return {
            "network": self.denoiser.net.config.to_json(),
            "edm": self.denoiser.edm.to_json(),
            "encoding": self.encoding.to_json(),
            "class_prior": list(self.class_prior),
            # Training-data means: the sampler's starting mean and the app's reference prevalences.
            "reference_means": None
            if self.data_mean is None
            else [float(v) for v in self.data_mean],
        }

    def save(
        self,
        folder: str | Path,
        *,
        data_card: dict,
        training_command: str,
        metrics: dict,
        extra_config: dict | None = None,
    ) -> Manifest:
        manifest = save_checkpoint(
            folder,
            self.denoiser.net.state_dict(),
            Manifest(
                model_id=self.model_id,
                family=FAMILY,
                config={**self.config_json(), **(extra_config or {})},
                data_card=data_card,
                training_command=training_command,
                metrics=metrics,
            ),
        )
        self.manifest = manifest
        return manifest

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str | None = None) -> EHRDiffModel:
        device = torch.device(device) if device is not None else select_device()
        tensors, manifest = load_checkpoint(folder, family=FAMILY, device="cpu")
        cfg = manifest.config
        try:
            net_cfg = NetworkConfig.from_json(cfg["network"])
            edm_cfg = EDMConfig.from_json(cfg["edm"])
            encoding = VectorEncoding.from_json(cfg["encoding"])
        except (KeyError, TypeError) as exc:
            raise CheckpointError(
                f"Checkpoint '{Path(folder).name}': incomplete config ({exc})."
            ) from None
        if net_cfg.dim != encoding.dim:
            raise CheckpointError(
                f"Checkpoint '{Path(folder).name}': network width {net_cfg.dim} != encoding {encoding.dim}."
            )
        net = EHRDiffMLP(net_cfg)
        load_weights(net, tensors, folder, "network")
        model = cls(
            EDMDenoiser(net, edm_cfg),
            encoding,
            manifest.model_id,
            tuple(cfg.get("class_prior", ())),
            manifest,
            cfg.get("reference_means"),
        )
        return model.to(device)
