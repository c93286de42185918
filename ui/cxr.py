"""Streamlit helpers of the CXR Forecast page: the shared forecaster and the shipped example."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import streamlit as st

from core.checkpoints import read_manifest
from core.cxr.pipeline import FORECAST_FAMILY, DDLCXRForecaster
from core.data.images import RadiographImage, read_radiograph
from core.registry import MODELS, ModelSpec
from core.store import StoredModel
from ui import models, state
from ui.models import CHECKPOINTS

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "assets" / "cxr_example"
EXAMPLE_PRIOR = EXAMPLE_DIR / "prior.png"
EXAMPLE_LATER = EXAMPLE_DIR / "later.png"
EXAMPLE_WINDOW = EXAMPLE_DIR / "ehr_window.csv"
RESULT = "cxr_forecast_result"


@st.cache_resource(show_spinner="Loading the CXR forecaster")
def shipped_forecaster(checkpoint: str, device: str) -> DDLCXRForecaster:
    """One shared, read-only instance per checkpoint and device (inference only)."""
    return DDLCXRForecaster.load(CHECKPOINTS / checkpoint, device=device)


def forecasters() -> list[ModelSpec]:
    return [
        s
        for s in MODELS.where(task="forecast-cxr")
        if s.checkpoint and (CHECKPOINTS / s.checkpoint).is_dir()
    ]


def forecaster_choices() -> dict[str, ModelSpec | StoredModel]:
    """Shipped forecasters, then the verified forecasters in the model store, by label."""
    out: dict[str, ModelSpec | StoredModel] = {s.title: s for s in forecasters()}
    for m in models.store().list(family=FORECAST_FAMILY):
        out[f"{m.name} (stored)"] = m
    return out


def load_forecaster(
    choice: ModelSpec | StoredModel, device: str
) -> tuple[DDLCXRForecaster, str, dict]:
    """The forecaster, its one-line description and what it was validated on."""
    if isinstance(choice, StoredModel):
        model = models.stored_model(choice, device)
        checked = dict(choice.manifest.metrics.get("crossvalidation", {}))
        return model, f"Stored model `{choice.name}`.", checked
    return (
        shipped_forecaster(choice.checkpoint, device),
        choice.description,
        validation(choice.checkpoint),
    )


@st.cache_resource(show_spinner=False)
def example_images() -> tuple[RadiographImage, RadiographImage]:
    """The shipped example's prior and later radiograph, read once per process (read-only)."""
    return read_radiograph(EXAMPLE_PRIOR), read_radiograph(EXAMPLE_LATER)


@st.cache_data
def example_provenance() -> dict:
    """Source, licence, attribution and gap of the shipped example pair."""
    return json.loads((EXAMPLE_DIR / "provenance.json").read_text())


@st.cache_data
def validation(checkpoint: str) -> dict:
    """What the checkpoint was validated on and its verdict (``metrics.crossvalidation``)."""
    return dict(read_manifest(CHECKPOINTS / checkpoint).metrics.get("crossvalidation", {}))


@st.cache_data
def example_sha256(path: str) -> str:
    """sha256 of a shipped example file (the prior, the EHR window): its identity as an input."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_id(choice: ModelSpec | StoredModel) -> tuple[str, str]:
    """(the forecaster's id as captions name it, its identity: id and weights' sha256)."""
    if isinstance(choice, StoredModel):
        return choice.name, f"{choice.name}:{choice.manifest.sha256 if choice.manifest else ''}"
    return choice.checkpoint, f"shipped:{choice.checkpoint}"


def forecast_inputs(
    choice: ModelSpec | StoredModel,
    prior: tuple[str, str] | None,
    window: tuple[str, str] | None,
    horizon_days: float,
    sampling: dict,
) -> dict[str, state.Input]:
    """What a forecast is made from: the model, the prior image and the EHR window (each as
    (how it is shown, sha256 of its file); None: none given), the horizon and the sampling
    settings (name -> value, shown in that order)."""
    name, identity = model_id(choice)
    return {
        "model": state.Input("the model", f"`{name}`", identity),
        "prior": state.Input("the prior image", *(prior or (state.NOTHING, ""))),
        "window": state.Input("the EHR window", *(window or (state.NOTHING, ""))),
        "horizon": state.Input.of("the horizon", float(horizon_days), f"{horizon_days:g} days"),
        "sampling": state.Input.of(
            "the sampling settings",
            tuple(sampling.items()),
            ", ".join(f"{k} {v}" for k, v in sampling.items()),
        ),
    }


def keep_result(result, frame, later, inputs: dict[str, state.Input]) -> None:
    """The last forecast of this session: (CXRForecast, EHR window frame, true later image),
    bound to the ``inputs`` it was made from (:func:`forecast_inputs`)."""
    state.keep_bound(RESULT, (result, frame, later), inputs)


def last_result(inputs: dict[str, state.Input]) -> state.Bound | None:
    """The last forecast, with what differs between the inputs now on the page and its own."""
    return state.bound_result(RESULT, inputs, "this forecast")
