"""Generate-page widgets for FLEXGEN-EHR: training form, sampling form, patient viewer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from core.data.clinical import with_value_labels
from core.data.cohort import Cohort
from core.data.records import EHRTable
from core.encoding.vectors import VectorEncoding
from core.errors import CoreError
from core.flexgen.alignment import METHODS, PAPER_METHOD
from core.flexgen.missing import HANDLING, missing_part_handling
from core.flexgen.pipeline import FAMILY, MAX_RECORDS, FlexGenModel, FlexGenSettings
from core.flexgen.train import FlexGenConfig, equivalent_command, train_flexgen
from core.generation import SyntheticSet
from core.metrics.fidelity import dimension_wise_probability
from core.report import export
from core.report import generation_figures as gfigs
from ui import auth, state, training, widgets
from ui.training import TrainingPlan

TITLE = "FLEXGEN-EHR"
UNIT = "patients"
__all__ = [
    "FAMILY",
    "TITLE",
    "UNIT",
    "session_cohort",
    "generation_form",
    "show_patients",
    "training_form",
]


def generation_form(model: FlexGenModel, sets: dict) -> FlexGenSettings:
    """The sampling form; a submitted run lands in ``sets``. Returns the settings it holds now."""
    with st.form("generate_flexgen", enter_to_submit=False):
        c1, c2 = st.columns(2)
        n = widgets.count_input(
            c1,
            "Patients",
            MAX_RECORDS,
            500,
            "fg_n",
            f"memory-safe limit; each gets a static row and a "
            f"{model.encoding.temporal.n_steps}-step series",
        )
        seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="fg_seed")
        guidance, mix = widgets.label_mix_and_guidance(
            model.n_classes,
            model.encoding.label_classes,
            model.class_prior,
            "patients",
            "fg",
            label_name=model.encoding.label_name,
        )
        name = st.text_input("Name of this synthetic set", "", key="fg_name")
        st.caption(
            f"Latent DDPM, {model.schedule.steps} ancestral steps "
            f"(betas {model.schedule.beta_start:g} to {model.schedule.beta_end:g})."
        )
        submitted = st.form_submit_button("Generate", type="primary")
    settings = FlexGenSettings(
        n=int(n), seed=int(seed), guidance=guidance, label_mix=mix if model.n_classes else None
    )
    refused = widgets.refuse_over(settings.n, MAX_RECORDS, "patients", "memory-safe limit")
    if submitted and not refused:
        widgets.generate_into_session(
            lambda cb: model.generate(settings, callback=cb),
            sets,
            name.strip() or f"{model.model_id} · seed {seed}",
            UNIT,
            "Latent DDPM steps",
        )
    return settings


def session_cohort() -> Cohort | None:
    """The session cohort this family trains on and is compared with."""
    return state.get_cohort()


def training_form(train: Cohort, device) -> TrainingPlan:
    """``train``: the session cohort's training split (static + series)."""
    has_label = train.labels is not None
    c1, c2, c3, c4 = st.columns(4)
    # CPU: 20 epochs + 3,000 steps (the shipped model's 60 + 12,000 took 319 s on 2 cores, so
    # about 1.5 minutes idle); GPU: the library defaults (40 + 6,000)
    epochs = c1.number_input(
        "VAE epochs",
        1,
        500,
        training.default_steps(device, 20, FlexGenConfig.vae_epochs),
        key="fg_train_epochs",
    )
    iters = c2.number_input(
        "Diffusion steps",
        100,
        100_000,
        training.default_steps(device, 3000, FlexGenConfig.diffusion_iters),
        100,
        key="fg_train_iters",
    )
    kind = c3.selectbox(
        "Temporal VAE",
        ("cnn", "lstm"),
        key="fg_train_kind",
        help="1-D CNN (the paper's appendix; faster on a CPU) or LSTM (the paper's main text).",
    )
    seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key="fg_train_seed")
    conditional = st.checkbox(
        f"Condition on the label ({train.label_name})",
        value=has_label,
        disabled=not has_label,
        key="fg_train_cond",
    )
    handling = st.selectbox(
        "Missing parts",
        tuple(HANDLING),
        format_func=HANDLING.get,
        key="fg_train_missing",
        help="How records missing their static row or their series enter training. kNN fills "
        "the part from the nearest records that have both; the latent methods impute it after "
        f"the autoencoders; '{METHODS[PAPER_METHOD]}' is the paper's. The model card of "
        "flexgen-physionet2012 compares them on PhysioNet and the eICU demo.",
    )
    config = replace(
        missing_part_handling(FlexGenConfig(), handling),
        vae_epochs=int(epochs),
        diffusion_iters=int(iters),
        temporal_kind=kind,
        conditional=conditional,
        seed=int(seed),
    )
    return training.plan(
        TITLE,
        1,
        train_flexgen,
        train,
        config,
        command=equivalent_command(config, device),
        device=device,
    )


def show_patients(
    synth: SyntheticSet,
    name: str,
    train_table: EHRTable | None,
    train_encoding: VectorEncoding | None,
) -> None:
    """Static table, one patient's series, the downloads and the prevalence scatter."""
    cohort = synth.cohort
    s = synth.settings
    guidance = f", guidance {s.guidance:g}" if s.label_mix else ""
    st.caption(
        f"{synth.table.n_records:,} patients from `{synth.model_id}` · DDPM {s.steps} steps, "
        f"seed {s.seed}{guidance} · {synth.seconds:.1f} s. Synthetic data: not real patients."
    )
    static, _ = export.patient_frames(cohort)
    st.markdown("**Static part** (one row per synthetic patient)")
    st.dataframe(with_value_labels(static.head(200)), hide_index=True, key="fg_static")
    widgets.value_label_note(static.columns)
    t = cohort.temporal
    c1, c2 = st.columns([1, 2])
    patient = c1.selectbox("Patient", list(cohort.record_ids[:500]), key="fg_patient")
    counts = t.mask.sum(axis=(0, 1))
    default = [t.variables[j] for j in np.argsort(-counts)[:4]]
    chosen = c2.multiselect("Variables", list(t.variables), default=default, key="fg_vars")
    if patient is not None and chosen:
        i = int(np.flatnonzero(cohort.record_ids == patient)[0])
        cols = [t.variables.index(v) for v in chosen]
        st.plotly_chart(
            gfigs.patient_series(
                t.values[i][:, cols],
                t.mask[i][:, cols],
                tuple(chosen),
                tuple(t.units[j] for j in cols),
                t.step_hours,
                f"{patient}: observed values (points) over {t.n_steps * t.step_hours:g} h",
            ),
            key="fg_series",
        )
    if auth.steward_only("Downloading synthetic data"):
        widgets.download_files(synth, name, "fg")
    if train_table is not None and train_encoding is not None:
        try:
            result = dimension_wise_probability(
                train_encoding.encode(train_table),
                train_encoding.encode(synth.table),
                train_encoding.dim_names,
            )
            st.plotly_chart(
                gfigs.prevalence_scatter(result, "session training split, per-stay summaries"),
                key="fg_scatter",
            )
        except CoreError:
            st.caption("The session cohort has other columns; no comparison shown.")
