"""How to train "another model like this one": the family and settings recorded in a model's
manifest, with a new seed, on other records; how to sample it; and the one record table every
model's output and the real records are compared in (EHRDiff, FLEXGEN-EHR: the cohort's record
table; EHRPD: one row per patient over the audited model's code vocabulary)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from core.checkpoints import Manifest, read_manifest
from core.data.cohort import Cohort
from core.data.records import EHRTable, ehr_table
from core.data.visits import VisitCohort, patient_table
from core.errors import ConfigError
from core.progress import StepCallback

AnyCohort = Cohort | VisitCohort


@dataclass(frozen=True)
class Recipe:
    """One family's training with a model's recorded settings. ``steps`` is the training budget
    (EHRDiff: optimiser steps; FLEXGEN-EHR: diffusion iterations); ``recorded_steps`` is what the
    audited model was trained with, so a shorter audit says so."""

    family: str
    steps: int
    recorded_steps: int
    train: Callable[[AnyCohort, int, StepCallback | None], Any]
    sample: Callable[[Any, int, int], EHRTable]
    table: Callable[[AnyCohort], EHRTable] = ehr_table
    settings: Any = None  # the family's training config, as recorded (seed and budget aside)

    @property
    def settings_note(self) -> str:
        if self.steps == self.recorded_steps:
            return f"the model's own settings ({self.steps:,} steps)"
        return f"the model's settings at {self.steps:,} steps instead of {self.recorded_steps:,}"


def _require(manifest: Manifest, recorded: dict) -> None:
    if not recorded:
        raise ConfigError(
            f"Model '{manifest.model_id}' records no training settings of its family (a distilled "
            "model, or one trained by an earlier version): audit the model it was distilled "
            "from, or retrain it with this version."
        )


def _ehrdiff(manifest: Manifest, folder: Path, steps: int | None, device: torch.device) -> Recipe:
    from core.ehrdiff.dp import DPConfig
    from core.ehrdiff.pipeline import GenerationSettings
    from core.ehrdiff.train import TrainConfig, train_ehrdiff

    raw = dict(manifest.config.get("train") or {})
    _require(manifest, raw)
    # A private model's retrainings are private alike: the canary audit then checks the guarantee.
    dp = DPConfig(**raw["dp"]) if isinstance(raw.get("dp"), dict) else None
    # Models trained before EDM's EMA ramp-up existed (the shipped ones) were trained without it.
    raw.setdefault("ema_rampup", 0.0)
    base = TrainConfig(**{**raw, "units": tuple(raw["units"]), "dp": dp})
    budget = steps or base.steps

    def train(cohort: Cohort, seed: int, callback: StepCallback | None) -> Any:
        config = replace(base, steps=budget, seed=seed)
        return train_ehrdiff(
            ehr_table(cohort), config, model_id="audit", device=device, callback=callback,
            patient_ids=cohort.patient_ids,  # the privacy unit, for a private recipe
        ).model  # fmt: skip

    def sample(model: Any, n: int, seed: int) -> EHRTable:
        return model.generate(GenerationSettings(n=n, seed=seed)).table

    return Recipe("ehrdiff", budget, base.steps, train, sample, settings=base)


def _flexgen(manifest: Manifest, folder: Path, steps: int | None, device: torch.device) -> Recipe:
    from core.flexgen.pipeline import FlexGenSettings
    from core.flexgen.train import FlexGenConfig, train_flexgen

    raw = dict((manifest.config.get("training") or {}).get("config") or {})
    _require(manifest, raw)
    base = FlexGenConfig.from_json(raw)
    budget = steps or base.diffusion_iters

    def train(cohort: Cohort, seed: int, callback: StepCallback | None) -> Any:
        config = replace(base, diffusion_iters=budget, seed=seed)
        return train_flexgen(
            cohort, config, model_id="audit", device=device, callback=callback
        ).model

    def sample(model: Any, n: int, seed: int) -> EHRTable:
        return model.generate(FlexGenSettings(n=n, seed=seed)).table

    return Recipe("flexgen-ehr", budget, base.diffusion_iters, train, sample, settings=base)


def _ehrpd(manifest: Manifest, folder: Path, steps: int | None, device: torch.device) -> Recipe:
    from core.diffusion.ddpm import DDPMSchedule
    from core.ehrpd.pipeline import EHRPDModel, SequenceSettings
    from core.ehrpd.train import EHRPDTrainConfig, train_ehrpd

    raw = dict((manifest.config.get("training") or {}).get("config") or {})
    _require(manifest, raw)
    base = EHRPDTrainConfig(**{**raw, "ddpm": DDPMSchedule.from_json(raw["ddpm"])})
    budget = steps or base.steps
    # Every shadow learns its own vocabulary; all are compared over the audited model's.
    vocabulary = EHRPDModel.load(folder, device="cpu").encoding.vocabulary_map

    def train(cohort: VisitCohort, seed: int, callback: StepCallback | None) -> Any:
        config = replace(base, steps=budget, seed=seed)
        return train_ehrpd(cohort, config, model_id="audit", device=device, callback=callback).model

    def sample(model: Any, n: int, seed: int) -> EHRTable:
        return patient_table(model.generate(SequenceSettings(n=n, seed=seed)).visits, vocabulary)

    def table(cohort: VisitCohort) -> EHRTable:
        return patient_table(cohort, vocabulary)

    return Recipe("ehrpd", budget, base.steps, train, sample, table, settings=base)


RECIPES: dict[str, Callable[[Manifest, Path, int | None, torch.device], Recipe]] = {
    "ehrdiff": _ehrdiff,
    "flexgen-ehr": _flexgen,
    "ehrpd": _ehrpd,
}


def recipe_for(folder: str | Path, steps: int | None, device: torch.device) -> Recipe:
    """The recipe of the model in ``folder``, retraining with ``steps`` (None: its own)."""
    manifest = read_manifest(folder)
    if manifest.family not in RECIPES:
        raise ConfigError(
            f"Audits retrain synthetic-record generators ({', '.join(sorted(RECIPES))}); "
            f"'{manifest.model_id}' is a {manifest.family} model."
        )
    return RECIPES[manifest.family](manifest, Path(folder), steps, device)
