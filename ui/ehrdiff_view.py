"""Generate-page widgets for EHRDiff: training form, sampling form, record viewer."""

from __future__ import annotations

import copy

import numpy as np
import streamlit as st

from core.data.clinical import with_value_labels
from core.data.records import EHRTable
from core.diffusion.karras import DISTILLED, SAMPLERS, SCHEDULES, SCORE_SAMPLERS
from core.ehrdiff.dp import DPConfig
from core.ehrdiff.pipeline import FAMILY, MAX_RECORDS, EHRDiffModel, GenerationSettings
from core.ehrdiff.train import NETWORK_PRESETS, TrainConfig, equivalent_command, train_ehrdiff
from core.errors import CoreError
from core.generation import SyntheticSet
from core.metrics.fidelity import dimension_wise_probability, dimension_wise_probability_from_means
from core.report import generation_figures as gfigs
from ui import auth, state, training, widgets
from ui.training import TrainingPlan

TITLE = "EHRDiff"
UNIT = "records"
__all__ = [
    "FAMILY",
    "TITLE",
    "UNIT",
    "session_cohort",
    "generation_form",
    "show_records",
    "training_form",
]


def session_cohort() -> EHRTable | None:
    """The session cohort this family is compared with, as its record table (built once per
    cohort by ui.state, not on every rerun)."""
    return state.cohort_table()


# Default training steps. CPU: the medium network ran 0.5-3.1 steps/s on the 2 shared cores of
# the development machine under other work (85 steps/s when idle: the shipped PhysioNet model's
# 30,000 steps took 352 s), so 800 steps end in about 4 minutes at 3 steps/s; with the EMA
# ramp-up a 400-step model on the 2,000-stay demo already scored R² 0.96 against its training
# data (it scored -2.9 without). GPU: the earlier default.
CPU_STEPS, ACCELERATOR_STEPS = 800, 3000


def training_form(
    train_table: EHRTable,
    label_name: str | None,
    selected: object,
    compatible: bool,
    device,
    patient_ids: np.ndarray | None = None,
) -> TrainingPlan:
    """``patient_ids``: of the training records; DP training is offered when each is unique."""
    c1, c2, c3 = st.columns(3)
    steps = c1.number_input(
        "Training steps",
        100,
        100_000,
        training.default_steps(device, CPU_STEPS, ACCELERATOR_STEPS),
        100,
        key="train_steps",
        help=f"Default {CPU_STEPS:,} on a CPU, {ACCELERATOR_STEPS:,} on a GPU. The panel below "
        "shows the measured steps/s and the time left once training runs.",
    )
    size = c2.selectbox(
        "Network size",
        tuple(NETWORK_PRESETS),
        index=1,
        key="train_size",
        help="; ".join(f"{k}: {list(v)}" for k, v in NETWORK_PRESETS.items()) + ".",
    )
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
    has_label = train_table.labels is not None
    conditional = st.checkbox(
        f"Condition on the label ({label_name})",
        value=has_label,
        disabled=not has_label,
        key="train_cond",
    )
    one_each = patient_ids is not None and len(set(patient_ids.tolist())) == len(patient_ids)
    private = st.checkbox(
        "Differentially private",
        value=False,
        disabled=not one_each,
        key="train_dp",
        help="DP-SGD: each record's gradient clipped, noise added, (epsilon, delta) accounted. "
        "The guarantee is per record; offered only when each patient has one record. It covers "
        "the network weights, not the encoding fitted from the data."
        if one_each
        else "Not offered: this cohort has several records per patient, and DP training per "
        "patient is not implemented yet.",
    )
    dp = None
    if private:
        epsilon = st.number_input(
            "Differentially private: target epsilon",
            0.1,
            100.0,
            4.0,
            0.5,
            key="train_dp_epsilon",
            help="Smaller is more private and noisier. Delta is 1/n^1.1 for n training records.",
        )
        dp = DPConfig(float(epsilon))
    can_finetune = compatible and isinstance(selected, EHRDiffModel) and not private
    finetune = st.checkbox(
        "Fine-tune the selected model instead of starting from scratch",
        value=False,
        disabled=not can_finetune,
        key="train_finetune",
    )
    config = TrainConfig(
        units=NETWORK_PRESETS[size],
        steps=int(steps),
        seed=int(seed),
        conditional=conditional,
        dp=dp,
    )
    # Fine-tune a private copy: the shipped model is shared by every session.
    init = copy.deepcopy(selected) if finetune and can_finetune else None
    return training.plan(
        TITLE,
        config.steps,
        train_ehrdiff,
        train_table,
        config,
        command=equivalent_command(config, device),
        device=device,
        init_from=init,
        patient_ids=patient_ids,
    )


MAX_STEPS = 1000  # sampler steps offered in the form


def _reset_steps() -> None:
    """On a sampler switch: the steps field starts again from the new sampler's default."""
    sampler = st.session_state.get("gen_sampler")
    if sampler in SCORE_SAMPLERS:
        st.session_state["gen_steps"] = SAMPLERS.get(sampler).steps


def generation_form(
    model: EHRDiffModel, sets: dict, distilled: EHRDiffModel | None = None
) -> GenerationSettings:
    """The sampling form; a submitted run lands in ``sets``. ``distilled``: a model distilled from
    ``model``, offered as a sampler beside Heun and DPM-Solver++(2M). Returns the settings the
    form holds now (what a set generated now would be made with)."""
    student = model if model.distillation is not None else distilled
    samplers = () if model.distillation is not None else SCORE_SAMPLERS
    samplers += (DISTILLED,) if student is not None else ()
    # Outside the form: the fields below depend on it. Switching sampler resets the steps to
    # the new sampler's default (DPM's 10 steps are not Heun's).
    sampler = st.selectbox(
        "Sampler",
        samplers,
        key="gen_sampler",
        format_func=lambda k: SAMPLERS.get(k).label,
        on_change=_reset_steps,
        help="The first is the default. "
        + "; ".join(
            f"{SAMPLERS.get(k).label}: {SAMPLERS.get(k).steps} steps" for k in SCORE_SAMPLERS
        )
        + ".",
    )
    info = student.distillation if sampler == DISTILLED else None
    if sampler in SCORE_SAMPLERS:
        st.session_state.setdefault("gen_steps", SAMPLERS.get(sampler).steps)
    with st.form("generate", enter_to_submit=False):  # Enter in a number box is no click
        c1, c2, c3, c4 = st.columns(4)
        n = widgets.count_input(c1, "Records", MAX_RECORDS, 1000, "gen_n", "memory-safe limit")
        schedule = "auto"
        if info is not None:
            steps = c2.selectbox(
                "Network evaluations",
                info.evaluations,
                key="gen_evals",
                help="1: straight from noise to a record; 2: that record noised again to "
                f"sigma {info.levels[-1]:.3g} and mapped once more (closer to the teacher).",
            )
            c3.caption(
                f"Distilled from {info.teacher_model_id} ({info.teacher_sampler}, "
                f"{info.teacher_steps} steps); its measured fidelity is on the model card."
            )
        else:
            steps = c3.number_input(
                "Steps",
                min_value=1,
                key="gen_steps",
                help=f"Default {SAMPLERS.get(sampler).steps} for this sampler; at most {MAX_STEPS:,}. "
                "Heun uses 2 network evaluations per step; DPM-Solver++(2M) one.",
            )
        seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key="gen_seed")
        if info is None:
            schedule = st.selectbox(
                "Noise schedule",
                ("auto", *SCHEDULES),
                key="gen_schedule",
                format_func=lambda k: (
                    "default for the sampler" if k == "auto" else SCHEDULES[k].description
                ),
                help="Default: the paper's EDM schedule for Heun, the tuned one for DPM-Solver++(2M).",
            )
        guidance, mix = widgets.label_mix_and_guidance(
            model.n_classes,
            model.encoding.label_classes,
            model.class_prior,
            UNIT,
            "gen",
            fixed_guidance=None if info is None else info.guidance,
            label_name=model.encoding.label_name,
        )
        name = st.text_input(
            "Name of this synthetic set",
            "",
            key="gen_name",
            placeholder="e.g. ICU stays, DPM 16 steps",
        )
        submitted = st.form_submit_button("Generate", type="primary")
    settings = GenerationSettings(
        n=int(n),
        sampler=sampler,
        steps=int(steps),
        seed=int(seed),
        guidance=guidance,
        label_mix=mix if model.n_classes else None,
        schedule=None if schedule == "auto" else schedule,
    )
    refused = widgets.refuse_over(settings.n, MAX_RECORDS, "records", "memory-safe limit")
    if info is None:
        refused |= widgets.refuse_over(
            settings.steps, MAX_STEPS, "steps", "sampling time grows with every step"
        )
    if submitted and not refused:
        source = student if info is not None else model
        unit = "evaluations" if info is not None else "steps"
        widgets.generate_into_session(
            lambda cb: source.generate(settings, callback=cb),
            sets,
            name.strip() or f"{model.model_id} · {sampler} {steps} {unit} · seed {seed}",
            UNIT,
            f"Sampling ({SAMPLERS.get(sampler).evaluations(int(steps))} network evaluations per "
            "record)",
        )
    return settings


def show_records(
    synth: SyntheticSet,
    name: str,
    reference: EHRDiffModel | None,
    train_table: EHRTable | None,
    compatible: bool,
) -> None:
    """Preview, prevalence scatter against the training data, code counts and downloads."""
    frame = synth.table.to_frame()
    st.caption(f"{synth.describe()} Synthetic data: not real patients.")
    st.dataframe(with_value_labels(frame.head(200)), hide_index=True, key="gen_preview")
    widgets.value_label_note(frame.columns)
    names = reference.encoding.dim_names if reference is not None else None
    result, against = None, ""
    if train_table is not None and reference is not None:
        try:
            real = reference.encoding.encode(train_table)
            result = dimension_wise_probability(real, synth.vectors, names)
            against = "session training split"
        except CoreError:
            result = None
    if result is None and reference is not None and reference.reference_means is not None:
        result = dimension_wise_probability_from_means(
            reference.reference_means, synth.vectors.mean(axis=0), names, 0, len(synth.vectors)
        )
        against = "model's training data (aggregate)"
    c1, c2 = st.columns(2)
    if result is not None:
        c1.plotly_chart(gfigs.prevalence_scatter(result, against), key="gen_scatter")
    if synth.table.codes is not None:
        real_counts = None
        if train_table is not None and train_table.codes is not None and compatible:
            real_counts = train_table.codes.codes_per_record()
        c2.plotly_chart(
            gfigs.codes_per_record_overlay(real_counts, synth.table.codes.codes_per_record()),
            key="gen_codes",
        )
    if auth.steward_only("Downloading synthetic data"):
        widgets.download_files(synth, name, "gen")
