"""Load any shipped or user-trained model folder by the family its manifest names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.checkpoints import read_manifest
from core.errors import CheckpointError


def load_model(folder: str | Path, device: torch.device | str | None = None) -> Any:
    """The model in ``folder`` (EHRDiff, FLEXGEN-EHR or DDL-CXR), hash-verified on load."""
    family = read_manifest(folder).family
    if family == "ehrdiff":
        from core.ehr.pipeline import EHRDiffModel

        return EHRDiffModel.load(folder, device)
    if family == "flexgen-ehr":
        from core.flexgen.pipeline import FlexGenModel

        return FlexGenModel.load(folder, device)
    if family == "ddl-cxr":
        from core.cxr.pipeline import DDLCXRForecaster

        return DDLCXRForecaster.load(folder, device or "cpu")[0]
    raise CheckpointError(f"Checkpoint '{Path(folder).name}' is of unknown family '{family}'.")
