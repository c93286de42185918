"""Load any shipped or user-trained model folder by the family its manifest names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.checkpoints import read_manifest
from core.cxr.pipeline import FORECAST_FAMILY, DDLCXRForecaster
from core.ehrdiff.pipeline import FAMILY as EHRDIFF_FAMILY
from core.ehrdiff.pipeline import EHRDiffModel, GenerationSettings
from core.ehrpd.pipeline import FAMILY as EHRPD_FAMILY
from core.ehrpd.pipeline import EHRPDModel, SequenceSettings
from core.errors import CheckpointError
from core.flexgen.pipeline import FAMILY as FLEXGEN_FAMILY
from core.flexgen.pipeline import FlexGenModel, FlexGenSettings


def _forecaster(folder: str | Path, device: torch.device | str | None = None) -> DDLCXRForecaster:
    return DDLCXRForecaster.load(folder, device or "cpu")[0]


# family id (manifest) -> loader(folder, device=...)
LOADERS: dict[str, Callable[..., Any]] = {
    EHRDIFF_FAMILY: EHRDiffModel.load,
    FLEXGEN_FAMILY: FlexGenModel.load,
    FORECAST_FAMILY: _forecaster,
    EHRPD_FAMILY: EHRPDModel.load,
}
GENERATOR_FAMILIES = (EHRDIFF_FAMILY, FLEXGEN_FAMILY, EHRPD_FAMILY)  # make synthetic cohorts
# each generator family's settings (all take n and seed; the rest have defaults)
SETTINGS: dict[str, Callable[..., Any]] = {
    EHRDIFF_FAMILY: GenerationSettings,
    FLEXGEN_FAMILY: FlexGenSettings,
    EHRPD_FAMILY: SequenceSettings,
}


def load_model(folder: str | Path, device: torch.device | str | None = None) -> Any:
    """The model in ``folder`` (EHRDiff, FLEXGEN-EHR, EHRPD or DDL-CXR), hash-verified on load."""
    family = read_manifest(folder).family
    if family not in LOADERS:
        raise CheckpointError(f"Checkpoint '{Path(folder).name}' is of unknown family '{family}'.")
    return LOADERS[family](folder, device=device)
