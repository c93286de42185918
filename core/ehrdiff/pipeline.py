"""EHRDiff pipeline: one trained model with its feature encoding; ``generate`` is the entry call."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.checkpoints import Manifest, SavedModel, load_checkpoint, load_weights
from core.config import JSONConfig
from core.data.cohort import Cohort
from core.data.records import EHRTable, ehr_table
from core.device import make_generator, select_device
from core.diffusion import karras
from core.diffusion.edm import EDMConfig, EDMDenoiser
from core.diffusion.guidance import classifier_free, network_evaluations_per_step
from core.ehrdiff.network import EHRDiffMLP, NetworkConfig
from core.encoding.constraints import ConstraintSet, constraints_for
from core.encoding.repair import enforce
from core.encoding.vectors import VectorEncoding
from core.errors import CheckpointError, ConfigError
from core.generation import (
    SyntheticSet,
    chunks,
    draw_labels,
    synthetic_ids,
    validate_label_settings,
)
from core.progress import ProgressCallback

log = logging.getLogger(__name__)

FAMILY = "ehrdiff"
MAX_RECORDS = 200_000  # per call: 200k x ~2k dims float32 is ~1.6 GB of output, safe on 8 GB
CHUNK = 8_192


@dataclass(frozen=True)
class Distillation(JSONConfig):
    """What a distilled model was distilled from (core.ehrdiff.distill): it maps x at each of
    ``levels`` to the end of its teacher's ODE, so it samples in ``len(levels)`` evaluations."""

    teacher_model_id: str
    teacher_sha256: str
    teacher_sampler: str
    teacher_steps: int
    guidance: float
    levels: tuple[float, ...]

    @property
    def evaluations(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.levels) + 1))


@dataclass(frozen=True)
class GenerationSettings:
    n: int
    sampler: str = karras.DEFAULT_SAMPLER
    steps: int = karras.SAMPLERS.get(karras.DEFAULT_SAMPLER).steps
    seed: int = 0
    guidance: float = 1.0
    label_mix: tuple[float, ...] | None = None  # class probabilities; None = training frequencies
    schedule: str | None = None  # a key of karras.SCHEDULES; None = the sampler's default

    @property
    def schedule_name(self) -> str:
        if self.schedule:
            return self.schedule
        return (
            karras.SAMPLERS.get(self.sampler).schedule if self.sampler in karras.SAMPLERS else "edm"
        )

    def validate(self, model: EHRDiffModel) -> None:
        if not isinstance(self.n, int) or self.n <= 0:
            raise ConfigError(f"Number of records must be a positive integer, got {self.n!r}.")
        if self.n > MAX_RECORDS:
            raise ConfigError(
                f"At most {MAX_RECORDS:,} records per generation (memory-safe limit); asked for {self.n:,}."
            )
        if model.distillation is not None or self.sampler == karras.DISTILLED:
            self._validate_distilled(model)
            return
        if self.sampler not in karras.SCORE_SAMPLERS:
            raise ConfigError(
                f"Unknown sampler '{self.sampler}'; choose one of {karras.SCORE_SAMPLERS}."
            )
        if self.schedule is not None and self.schedule not in karras.SCHEDULES:
            raise ConfigError(
                f"Unknown noise schedule '{self.schedule}'; choose one of {tuple(karras.SCHEDULES)}."
            )
        if not 1 <= self.steps <= 1000:
            raise ConfigError(f"Steps must be between 1 and 1000, got {self.steps}.")
        validate_label_settings(model.n_classes, self.guidance, self.label_mix)

    def _validate_distilled(self, model: EHRDiffModel) -> None:
        info = model.distillation
        if info is None:
            raise ConfigError(
                f"Model '{model.model_id}' is not distilled; sample it with {' or '.join(karras.SCORE_SAMPLERS)}."
            )
        if self.sampler != karras.DISTILLED:
            raise ConfigError(
                f"Model '{model.model_id}' is distilled from '{info.teacher_model_id}' and samples "
                f"only with the '{karras.DISTILLED}' sampler (its network is no score model)."
            )
        if self.steps not in info.evaluations:
            raise ConfigError(
                f"The distilled sampler takes {' or '.join(map(str, info.evaluations))} "
                f"evaluations, got {self.steps}."
            )
        if model.n_classes and self.guidance != info.guidance:
            raise ConfigError(
                f"The distilled sampler was trained at guidance {info.guidance:g}; got {self.guidance:g}. "
                "Sample its teacher for other guidance scales."
            )
        validate_label_settings(model.n_classes, self.guidance, self.label_mix)


class EHRDiffModel(SavedModel):
    family = FAMILY

    def __init__(
        self,
        denoiser: EDMDenoiser,
        encoding: VectorEncoding,
        model_id: str,
        class_prior: tuple[float, ...] = (),
        manifest: Manifest | None = None,
        data_mean: np.ndarray | None = None,
        distillation: Distillation | None = None,
        constraints: ConstraintSet | None = None,
    ) -> None:
        self.denoiser = denoiser.eval()
        # The training records' logic (core.encoding.constraints); None for a model stored
        # before constraints existed, which decodes with the rules its column names imply.
        self.constraints = constraints
        self.distillation = distillation
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
    def decoding_constraints(self) -> ConstraintSet:
        """The rules every decoded record is made to satisfy."""
        if self.constraints is not None:
            return self.constraints
        return constraints_for(None, [c.name for c in self.encoding.columns])

    def decode(self, vectors: np.ndarray, labels: np.ndarray | None, n: int) -> EHRTable:
        """Model-space vectors to records that obey the training records' logic."""
        table = self.encoding.decode(vectors, synthetic_ids(n), labels)
        return enforce(table, self.decoding_constraints, snap=self.encoding.snap)

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def to(self, device: torch.device | str) -> EHRDiffModel:
        self.denoiser.to(device)
        return self

    # --- generation --------------------------------------------------------------------------
    def check_compatible(self, cohort: Cohort | EHRTable) -> None:
        """A cohort, or its record table when the caller has it already (pages keep one)."""
        self.encoding.check_compatible(
            cohort if isinstance(cohort, EHRTable) else ehr_table(cohort)
        )

    @torch.no_grad()
    def generate_vectors(
        self,
        settings: GenerationSettings,
        callback: ProgressCallback | None = None,
        *,
        clamp: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Model-space vectors, clamped to [0, 1] unless ``clamp`` is False (for measuring how
        decoding should treat values beyond the range)."""
        settings.validate(self)
        device = self.device
        gen = make_generator(settings.seed, "cpu")  # CPU noise: identical samples on any device
        labels = draw_labels(settings.n, self.n_classes, settings.label_mix, self.class_prior, gen)
        sigmas = self.sigmas(settings)
        start_mean = None
        if self.data_mean is not None:
            start_mean = torch.as_tensor(self.data_mean, dtype=torch.float32, device=device)
        out = []
        for chunk in chunks(settings.n, CHUNK, settings.steps, callback):
            noise = torch.randn(len(chunk), self.encoding.dim, generator=gen).to(device)
            lab = None if labels is None else labels[chunk.start : chunk.stop].to(device)
            denoise = classifier_free(
                self.denoiser, lab, self.denoiser.net.null_label, settings.guidance
            )
            x = karras.sample(  # a distilled model's sampler draws fresh noise from gen
                settings.sampler,
                denoise,
                noise,
                sigmas,
                generator=gen,
                callback=chunk.callback,
                mean=start_mean,
            )
            out.append((x.clamp(0.0, 1.0) if clamp else x).float().cpu())
        vectors = torch.cat(out).numpy()
        return vectors, None if labels is None else labels.numpy().astype(np.int64)

    def sigmas(self, settings: GenerationSettings) -> torch.Tensor:
        """The noise levels ``settings`` sample at, then a final 0."""
        if self.distillation is not None:
            levels = [*self.distillation.levels[: settings.steps], 0.0]
            return torch.tensor(levels, dtype=torch.float32, device=self.device)
        schedule = karras.SCHEDULES[settings.schedule_name]
        sigma_max = min(schedule.sigma_max, self.denoiser.edm.sigma_max)
        return karras.karras_sigmas(
            settings.steps, self.denoiser.edm.sigma_min, sigma_max, schedule.rho, device=self.device
        )

    def generate(
        self, settings: GenerationSettings, callback: ProgressCallback | None = None
    ) -> SyntheticSet:
        """Generate ``settings.n`` synthetic records, decoded to the training table's columns."""
        start = time.perf_counter()
        vectors, labels = self.generate_vectors(settings, callback)
        table = self.decode(vectors, labels, settings.n)
        if len(self.decoding_constraints):  # the records as repaired, for the metrics
            vectors = self.encoding.encode(table)
        seconds = time.perf_counter() - start
        per_step = network_evaluations_per_step(labels, settings.guidance)
        evals = per_step * karras.SAMPLERS.get(settings.sampler).evaluations(settings.steps)
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
            **({} if self.distillation is None else {"distillation": self.distillation.to_json()}),
            **({} if self.constraints is None else {"constraints": self.constraints.to_json()}),
            # Training-data means: the sampler's starting mean and the app's reference prevalences.
            "reference_means": None
            if self.data_mean is None
            else [float(v) for v in self.data_mean],
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        return self.denoiser.net.state_dict()

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str | None = None) -> EHRDiffModel:
        device = torch.device(device) if device is not None else select_device()
        tensors, manifest = load_checkpoint(folder, family=FAMILY, device="cpu")
        cfg = manifest.config
        try:
            net_cfg = NetworkConfig.from_json(cfg["network"])
            edm_cfg = EDMConfig.from_json(cfg["edm"])
            encoding = VectorEncoding.from_json(cfg["encoding"])
            distillation = (
                Distillation.from_json(cfg["distillation"]) if "distillation" in cfg else None
            )
            constraints = (
                ConstraintSet.from_json(cfg["constraints"]) if cfg.get("constraints") else None
            )
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
            distillation,
            constraints,
        )
        return model.to(device)
