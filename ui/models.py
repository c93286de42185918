"""Model access for pages: shipped checkpoints are loaded once per process and shared."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.ehr.pipeline import EHRDiffModel
from core.registry import MODELS, ModelSpec

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@st.cache_resource(show_spinner="Loading model weights")
def shipped_ehrdiff(checkpoint: str, device: str) -> EHRDiffModel:
    """One shared, read-only instance per checkpoint and device (inference only, thread-safe)."""
    return EHRDiffModel.load(CHECKPOINTS / checkpoint, device=device)


def ehr_generators() -> list[ModelSpec]:
    return [
        s
        for s in MODELS.where(task="generate-ehr", family="ehrdiff")
        if s.checkpoint and (CHECKPOINTS / s.checkpoint).is_dir()
    ]
