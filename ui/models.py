"""Model access for pages: shipped and stored checkpoints are loaded once per process and shared."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.checkpoints import Manifest
from core.generation import SyntheticGenerator
from core.loading import GENERATOR_FAMILIES, LOADERS
from core.registry import MODELS, ModelSpec
from core.store import ModelStore, StoredModel

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@st.cache_resource(show_spinner="Loading model weights")
def shipped_model(family: str, checkpoint: str, device: str) -> SyntheticGenerator:
    """One shared, read-only instance per checkpoint and device (inference only, thread-safe)."""
    return LOADERS[family](CHECKPOINTS / checkpoint, device=device)


@st.cache_resource(show_spinner="Loading model weights", max_entries=16)
def _stored_model(family: str, folder: str, sha256: str, device: str) -> SyntheticGenerator:
    """Keyed by the weights' sha256 too: a model renamed, deleted or replaced is reloaded."""
    return LOADERS[family](Path(folder), device=device)


def stored_model(model: StoredModel, device: str) -> SyntheticGenerator:
    return _stored_model(model.family, str(model.folder), model.manifest.sha256, device)


def store() -> ModelStore:
    """The model store (``CSS_MODEL_ROOT``)."""
    return ModelStore()


def stored_generators() -> list[StoredModel]:
    """Verified stored models of the EHR generator families."""
    return [m for m in store().list() if m.ok and m.family in GENERATOR_FAMILIES]


def ehr_generators() -> list[ModelSpec]:
    """Registered EHR generators whose checkpoint ships with the app; a distilled model is offered
    as a sampler of the model it was distilled from, not beside it."""
    companions = {s.distilled for s in MODELS if s.distilled}
    return [
        s
        for s in MODELS.where(task="generate-ehr")
        if s.family in GENERATOR_FAMILIES
        and s.checkpoint
        and s.checkpoint not in companions
        and (CHECKPOINTS / s.checkpoint).is_dir()
    ]


def distilled_companion(spec: ModelSpec, device: str) -> SyntheticGenerator | None:
    """The shipped model distilled from ``spec``'s, if both ship and the companion names the
    teacher's weights (a teacher retrained without redistilling gets none)."""
    if not spec.distilled or not (CHECKPOINTS / spec.distilled).is_dir():
        return None
    teacher = shipped_model(spec.family, spec.checkpoint, device)
    student = shipped_model(spec.family, spec.distilled, device)
    info = getattr(student, "distillation", None)
    if info is None or teacher.manifest is None or info.teacher_sha256 != teacher.manifest.sha256:
        return None
    return student


def made_by(model: SyntheticGenerator, companion: SyntheticGenerator | None, synth) -> bool:
    """Whether ``synth`` came from ``model`` or its distilled companion (same encoding)."""
    return synth.model_id in {model.model_id, companion.model_id if companion else None}


def model_card(manifest: Manifest, description: str) -> None:
    """The selected model's card: data, metrics at export, training command, hash."""
    with st.expander("Model card"):
        st.write(description)
        st.json(
            {
                "data": manifest.data_card,
                "metrics at export": manifest.metrics,
                "training command": manifest.training_command,
                "sha256": manifest.sha256,
                "created": manifest.created,
            },
            expanded=False,
        )
