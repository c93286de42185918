"""Model access for pages: shipped and stored checkpoints are loaded once per process and shared."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.checkpoints import MANIFEST_FILE, Manifest, read_manifest
from core.ehrdiff.dp import guarantee_text
from core.errors import CheckpointError
from core.generation import SyntheticGenerator
from core.loading import GENERATOR_FAMILIES, LOADERS, WEAK_R2
from core.registry import MODELS, ModelSpec
from core.report.review_report import audit_frame
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


def audits_of_sets(sets: dict) -> dict[str, dict]:
    """Per set: the offline audits (``python -m core.audit``) recorded in the manifest of the
    shipped or stored model whose weights made it, found by the weights' sha256."""
    wanted = {getattr(s, "checkpoint_sha256", "") for s in sets.values()} - {""}
    if not wanted:
        return {}
    manifests = [m.manifest for m in stored_generators() if m.manifest]
    for folder in CHECKPOINTS.iterdir():
        if (folder / MANIFEST_FILE).is_file():
            try:
                manifests.append(read_manifest(folder))
            except CheckpointError:  # the Models page reports it; no audit to show from it
                continue
    audits = {m.sha256: m.metrics["audits"] for m in manifests if m.metrics.get("audits")}
    return {
        name: audits[s.checkpoint_sha256]
        for name, s in sets.items()
        if getattr(s, "checkpoint_sha256", "") in audits
    }


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


def quality_notes(metrics: dict) -> list[str]:
    """What a user must know before using a model, from the metrics its manifest recorded:
    partial (training stopped before its last step) and weak (the fidelity check at the end of
    an in-page training below ``core.loading.WEAK_R2``)."""
    notes = []
    if metrics.get("stopped_early"):
        done, planned = metrics.get("steps_done"), metrics.get("steps_planned")
        of = f" of {planned:,}" if isinstance(planned, int) else ""
        at = f" at step {done:,}{of}" if isinstance(done, int) else ""
        notes.append(
            f"**Partial model**: its training was stopped{at}. It is saved as it was then and "
            "may not have learnt the data yet."
        )
    r2 = metrics.get("fidelity_r2_vs_train")
    if isinstance(r2, int | float) and (r2 != r2 or r2 < WEAK_R2):  # r2 != r2: NaN
        notes.append(
            f"**Weak model**: R² {r2:.2f} against its training split, below {WEAK_R2:g} "
            f"({metrics.get('fidelity_check', 'fidelity check at the end of training')}). Its "
            "records do not reproduce the training data's prevalences; train longer or check "
            "the cohort."
        )
    impossible = metrics.get("fidelity_impossible_share")
    if isinstance(impossible, int | float) and impossible > 0:
        notes.append(
            f"**Impossible records**: {impossible:.1%} of the records sampled at the end of "
            "training break a rule no real training record breaks (a minimum above its maximum, "
            "a mean on its bound while they differ, a flag not 0 or 1). The release gate's "
            "validity floor refuses a set holding any; the Review lists the rules broken."
        )
    return notes


def quality_label(metrics: dict) -> str:
    """One word or two for a models table: 'partial', 'weak', 'partial, weak', 'checked' (the
    check passed) or '' (no check recorded, e.g. a model from a training command)."""
    words = []
    if metrics.get("stopped_early"):
        words.append("partial")
    r2 = metrics.get("fidelity_r2_vs_train")
    if isinstance(r2, int | float):
        words.append("weak" if r2 != r2 or r2 < WEAK_R2 else f"R² {r2:.2f}")
    impossible = metrics.get("fidelity_impossible_share")
    if isinstance(impossible, int | float) and impossible > 0:
        words.append(f"{impossible:.1%} impossible")
    return ", ".join(words)


def _text(value: object) -> str:
    """A manifest value as a short readable line."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        if "value" in value and "ci95" in value and len(value["ci95"]) == 2:
            lo, hi = value["ci95"]
            rest = {k: v for k, v in value.items() if k not in ("value", "ci95")}
            head = f"{_text(value['value'])} (95% CI {_text(lo)} to {_text(hi)})"
            return head + (f"; {_text(rest)}" if rest else "")
        return "; ".join(f"{str(k).replace('_', ' ')}: {_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def card_rows(section: dict) -> pd.DataFrame:
    """A manifest section (data card, metrics) as two readable columns."""
    return pd.DataFrame(
        {
            "item": [str(k).replace("_", " ") for k in section],
            "value": [_text(v) for v in section.values()],
        }
    )


def model_card(manifest: Manifest, description: str) -> None:
    """The selected model's card as text: what it is, partial or weak, the data it was trained
    on, its metrics at export, the training command, hash and date."""
    for line in quality_notes(manifest.metrics):
        st.warning(line, icon=":material/warning:")
    with st.expander("Model card"):
        if description:
            st.markdown(description)
        st.markdown(f"**Family** {manifest.family} · **created** {manifest.created or 'unknown'}")
        privacy = manifest.data_card.get("differential_privacy")
        if isinstance(privacy, dict):
            st.markdown(f"**Differential privacy** {guarantee_text(privacy)}")
        data_card = {k: v for k, v in manifest.data_card.items() if k != "differential_privacy"}
        if data_card:
            st.markdown("**Training data**")
            st.table(card_rows(data_card).set_index("item"))
        metrics = {k: v for k, v in manifest.metrics.items() if k != "audits"}
        if metrics:
            st.markdown("**Metrics at export**")
            st.table(card_rows(metrics).set_index("item"))
        audits = audit_frame({manifest.model_id: manifest.metrics.get("audits") or {}})
        if not audits.empty:
            st.markdown("**Offline privacy audits** (`python -m core.audit`)")
            st.table(audits.drop(columns="set").set_index("audit"))
        if manifest.training_command:
            st.markdown("**Training command**")
            st.code(manifest.training_command, language="bash", wrap_lines=True)
        st.caption(f"sha256 of the weights: `{manifest.sha256}`")
