"""EHRPD in the app: the Cohort page's visit summary, the Generate page's training and sampling
forms, and the sequence viewer (timeline, distributions, MEDS and long-CSV downloads)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.data.visits import VisitCohort
from core.ehrpd.pipeline import FAMILY, MAX_PATIENTS, EHRPDModel, SequenceSettings
from core.ehrpd.train import EHRPDTrainConfig, equivalent_command, train_ehrpd
from core.generation import SyntheticSet
from core.report import visit_figures as vfigs
from ui import auth, state, training, widgets
from ui.training import TrainingPlan

TITLE = "EHRPD"
UNIT = "patients"
__all__ = [
    "FAMILY",
    "TITLE",
    "UNIT",
    "generation_form",
    "show_sequences",
    "summary",
    "training_form",
]


def session_cohort() -> VisitCohort | None:
    return state.get_visits()


def summary(cohort: VisitCohort) -> None:
    """Counts, visits per patient, gaps and top codes of the session's visit cohort."""
    split = state.get_visit_split()
    st.subheader(cohort.name)
    m = st.columns(4)
    m[0].metric("Patients", f"{cohort.n_patients:,}")
    m[1].metric("Visits", f"{cohort.n_visits:,}")
    m[2].metric("Visits per patient (median)", f"{np.median(cohort.visits_per_patient()):g}")
    m[3].metric("Modalities", str(len(cohort.modalities)))
    st.caption(f"Modalities: {', '.join(cohort.modalities)}. Source: {cohort.source}.")
    single = float(np.mean(cohort.visits_per_patient() == 1)) if cohort.n_patients else 0.0
    if single > 0.5:  # a sequence model then learns mostly first visits
        st.warning(
            f"**{single:.0%} of patients have a single visit**: a poor fit for a sequence model, "
            "which learns from the visits that follow a first one. Consider a cohort of patients "
            "who came back (for eICU visits, the minimum visits per patient option above).",
            icon=":material/warning:",
        )
    for note in cohort.notes:
        st.caption(f":material/info: {note}")
    if split is not None:
        st.caption(
            f"Train/holdout split by patient: {len(split.train):,} / {len(split.holdout):,} "
            f"patients (seed {split.seed}{', stratified on the label' if split.stratified else ''})."
        )
    c1, c2 = st.columns(2)
    c1.plotly_chart(vfigs.visits_per_patient({"real": cohort}), key="visits_per_patient")
    c2.plotly_chart(vfigs.gaps({"real": cohort}), key="visit_gaps")
    tabs = st.tabs(list(cohort.modalities))
    for tab, modality in zip(tabs, cohort.modalities, strict=True):
        tab.plotly_chart(vfigs.top_codes(cohort, modality), key=f"top_codes_{modality}")


def training_form(train: VisitCohort, device) -> TrainingPlan:
    c1, c2, c3 = st.columns(3)
    # 2,000 steps on a CPU: the shipped eICU model ran 5,000 in 157 s on 2 cores (about 32
    # steps/s), so about a minute idle, a few minutes shared; 5,000 (the shipped model's) on a GPU
    steps = c1.number_input(
        "Training steps",
        100,
        50_000,
        training.default_steps(device, 2000, 5000),
        100,
        key="ehrpd_train_steps",
        help="Default 2,000 on a CPU, 5,000 on a GPU (the shipped eICU model's; at 12,000 it "
        "memorised training patients, see its model card).",
    )
    min_patients = c2.number_input(
        "Min. patients per code",
        1,
        100,
        5,
        key="ehrpd_min_patients",
        help="A code enters the model's vocabulary only if this many training patients hold it: "
        "the checkpoint then names no code that points at one or two people.",
    )
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="ehrpd_train_seed")
    has_label = train.labels is not None
    conditional = st.checkbox(
        f"Condition on the label ({train.label_name})",
        value=has_label,
        disabled=not has_label,
        key="ehrpd_train_cond",
    )
    config = EHRPDTrainConfig(
        steps=int(steps), min_patients=int(min_patients), conditional=conditional, seed=int(seed)
    )
    return training.plan(
        TITLE,
        config.steps,
        train_ehrpd,
        train,
        config,
        command=equivalent_command(config, device),
        device=device,
    )


def generation_form(model: EHRPDModel, sets: dict) -> SequenceSettings:
    """The sampling form; a submitted run lands in ``sets``. Returns the settings it holds now."""
    with st.form("generate_ehrpd", enter_to_submit=False):
        c1, c2, c3 = st.columns(3)
        n = widgets.count_input(
            c1,
            "Patients",
            MAX_PATIENTS,
            300,
            "ehrpd_n",
            f"memory-safe limit; each gets up to {model.encoding.max_visits} visits",
        )
        steps = c2.number_input(
            "Steps per visit",
            min_value=1,
            value=25,
            key="ehrpd_steps",
            help=f"DDIM steps; at most the model's {model.schedule.steps:,} diffusion steps.",
        )
        seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="ehrpd_seed")
        classes = model.encoding.label_classes
        guidance, mix = widgets.label_mix_and_guidance(
            model.n_classes,
            classes,
            model.class_prior,
            UNIT,
            "ehrpd",
            label_name=model.encoding.label_name,
        )
        name = st.text_input("Name of this synthetic set", "", key="ehrpd_name")
        submitted = st.form_submit_button("Generate", type="primary")
    settings = SequenceSettings(
        n=int(n),
        seed=int(seed),
        steps=int(steps),
        guidance=guidance,
        label_mix=mix if model.n_classes else None,
    )
    refused = widgets.refuse_over(settings.n, MAX_PATIENTS, "patients", "memory-safe limit")
    refused |= widgets.refuse_over(
        settings.steps, model.schedule.steps, "steps per visit", "the model's diffusion steps"
    )
    if submitted and not refused:
        widgets.generate_into_session(
            lambda cb: model.generate(settings, callback=cb),
            sets,
            name.strip() or f"{model.model_id} · seed {seed}",
            UNIT,
            "Visit-by-visit sampling",
        )
    return settings


def show_sequences(synth: SyntheticSet, name: str) -> None:
    """A patient's timeline, visits and gaps against the training split, downloads."""
    v = synth.visits
    s = synth.settings
    st.caption(
        f"{v.n_patients:,} patients, {v.n_visits:,} visits from `{synth.model_id}` · DDIM "
        f"{s.steps} steps per visit, seed {s.seed} · {synth.seconds:.1f} s. Synthetic data: "
        "not real patients."
    )
    counts = v.visits_per_patient()
    patient = st.selectbox(
        "Patient",
        range(v.n_patients),
        format_func=lambda i: f"{v.patient_ids[i]} ({counts[i]} visits)",
        key="ehrpd_patient",
    )
    st.plotly_chart(vfigs.timeline(v, int(patient)), key="ehrpd_timeline")
    real = state.visit_train()
    sets = {"synthetic": v} if real is None else {"real": real, "synthetic": v}
    c1, c2 = st.columns(2)
    c1.plotly_chart(vfigs.visits_per_patient(sets), key="ehrpd_vpp")
    if len(v.known_gaps()):
        c2.plotly_chart(vfigs.gaps(sets), key="ehrpd_gaps")
    if auth.steward_only("Downloading synthetic data"):
        widgets.download_files(synth, name, "ehrpd")
