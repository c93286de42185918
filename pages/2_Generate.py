"""Generate: pick or train a model (EHRDiff or FLEXGEN-EHR), generate synthetic records, inspect and
download them."""

import copy

import numpy as np
import streamlit as st

from core.device import select_device
from core.diffusion.karras import SCHEDULES, network_evaluations
from core.ehrdiff.pipeline import MAX_RECORDS, GenerationSettings
from core.ehrdiff.train import TrainConfig, train_ehrdiff
from core.errors import CoreError
from core.flexgen.train import train_flexgen
from core.metrics.fidelity import dimension_wise_probability, dimension_wise_probability_from_means
from core.report import export
from core.report import generation_figures as gfigs
from ui import flexgen_view, jobs, models, state, widgets

widgets.device_sidebar()
st.title("Generate")
st.caption(
    "Synthetic records come from a diffusion model: EHRDiff (one vector per record) or FLEXGEN-EHR "
    "(complete patients: static row plus hourly series). Pick a shipped model or train one on the "
    "session cohort's training split, then generate as many records as you need."
)
try:
    device = select_device(state.device_preference())
except CoreError as exc:
    widgets.show_error(exc, "Choosing the device")
    st.stop()

cohort, split, table = state.get_cohort(), state.get_split(), state.cohort_table()
train_table = table.subset(split.train) if table is not None and split is not None else None

# --- model choice -------------------------------------------------------------------------------
shipped = {f"{s.title} (shipped)": s for s in models.ehr_generators()}
session_models = state.session_models()
options = list(session_models) + list(shipped)
if not options:
    st.info("No model yet: load a cohort on the Cohort page and train one below.")
choice = st.selectbox("Model", options, key="gen_model") if options else None
model = None
if choice in session_models:
    model = session_models[choice].to(device)
elif choice is not None:
    try:
        spec = shipped[choice]
        model = models.shipped_model(spec.family, spec.checkpoint, str(device))
    except CoreError as exc:
        widgets.show_error(exc, "Loading the model")
if model is not None and model.manifest is not None:
    with st.expander("Model card"):
        m = model.manifest
        st.write(shipped[choice].description if choice in shipped else "")
        st.json(
            {
                "data": m.data_card,
                "metrics at export": m.metrics,
                "training command": m.training_command,
                "sha256": m.sha256,
                "created": m.created,
            },
            expanded=False,
        )

compatible = False
flexgen = models.is_flexgen(model)
if model is not None and train_table is not None:
    try:
        if flexgen:
            model.encoding.check_compatible(cohort)  # columns and grid: the same for any split
        else:
            model.encoding.check_compatible(train_table)
        compatible = True
    except CoreError as exc:
        st.caption(
            f":material/info: The session cohort does not fit this model ({exc}); comparisons use the model's own reference."
        )

# --- training -----------------------------------------------------------------------------------
job: jobs.Job | None = st.session_state.get(state.TRAIN_JOB)


def start_button(key: str, family_title: str, total: int, train) -> jobs.Job | None:
    """Runs ``train(name, job)`` as this session's background job when pressed."""
    busy = job is not None and job.running
    if not st.button("Start training", type="primary", disabled=busy, key=key):
        return None
    name = state.unique_name(f"{family_title} on {cohort.name}", session_models)
    started = jobs.start(name, total, lambda j: train(name, j))
    st.session_state[state.TRAIN_JOB] = started
    return started


with st.expander(
    "Train a model on the session cohort", expanded=not options or (job is not None and job.running)
):
    if train_table is None:
        st.info("Load a cohort on the Cohort page first; training uses its training split only.")
    else:
        can_flexgen = cohort.static is not None and cohort.temporal is not None
        family = st.radio(
            "Model family",
            ("EHRDiff", "FLEXGEN-EHR"),
            horizontal=True,
            key="train_family",
            disabled=not can_flexgen,
            help="FLEXGEN-EHR needs a cohort with static features and time series; records missing "
            "one of them are kept and their latent is imputed by optimal transport.",
        )
        family = family if can_flexgen else "EHRDiff"

    if train_table is not None and family == "FLEXGEN-EHR":
        fg_config = flexgen_view.training_config(train_table.labels is not None, cohort.label_name)
        job = (
            start_button(
                "fg_train_start",
                "FLEXGEN-EHR",
                1,
                lambda name, j: train_flexgen(
                    cohort.subset(split.train),
                    fg_config,
                    model_id=name,
                    device=device,
                    callback=j.report,
                    should_stop=j.stop_event.is_set,
                ),
            )
            or job
        )
    elif train_table is not None:
        c1, c2, c3 = st.columns(3)
        steps = c1.number_input("Training steps", 100, 100_000, 3000, 100, key="train_steps")
        size = c2.selectbox(
            "Network size",
            ("small", "medium", "paper"),
            index=1,
            key="train_size",
            help="small: [256, 256]; medium: [512, 256, 256, 512]; paper: [1024, 384, 384, 384, 1024].",
        )
        seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed")
        has_label = train_table.labels is not None
        conditional = st.checkbox(
            f"Condition on the label ({cohort.label_name})",
            value=has_label,
            disabled=not has_label,
            key="train_cond",
        )
        finetune = st.checkbox(
            "Fine-tune the selected model instead of starting from scratch",
            value=False,
            disabled=not compatible,
            key="train_finetune",
        )
        units = {
            "small": (256, 256),
            "medium": (512, 256, 256, 512),
            "paper": (1024, 384, 384, 384, 1024),
        }[size]
        config = TrainConfig(units=units, steps=int(steps), seed=int(seed), conditional=conditional)
        # Fine-tune a private copy: the shipped model is shared by every session.
        init = copy.deepcopy(model) if finetune and compatible else None
        job = (
            start_button(
                "train_start",
                "EHRDiff",
                config.steps,
                lambda name, j: train_ehrdiff(
                    train_table,
                    config,
                    model_id=name,
                    device=device,
                    callback=j.report,
                    should_stop=j.stop_event.is_set,
                    init_from=init,
                ),
            )
            or job
        )

    # Poll only while a job runs: an idle page must not rerun every second for every session.
    @st.fragment(run_every=1.0 if job is not None and job.running else None)
    def training_progress() -> None:
        current: jobs.Job | None = st.session_state.get(state.TRAIN_JOB)
        if current is None:
            return
        if current.running:
            st.progress(
                current.step / max(current.total, 1),
                text=f"{current.title}: step {current.step:,} of {current.total:,}",
            )
            if st.button("Stop training", key="train_stop"):
                current.stop()
        if current.values:
            st.plotly_chart(
                gfigs.loss_curve(np.asarray(current.values)), key=f"loss_{current.started}"
            )
        if (
            not current.running
            and current.finished is not None
            and current.error is None
            and current.result is not None
        ):
            if current.title not in session_models:
                session_models[current.title] = current.result.model
                st.rerun(scope="app")
            note = " (stopped early)" if current.result.stopped_early else ""
            st.success(
                f"Trained **{current.title}** in {current.result.seconds:.0f} s{note}. It is now in the model list."
            )
        if current.error:
            st.error(f"**Training failed.** {current.error}")

    training_progress()

# --- generation ---------------------------------------------------------------------------------
sets = state.synthetic_sets()
if model is not None and flexgen:
    submitted = flexgen_view.generation_form(model)
    if submitted is not None:
        fg_settings, fg_name = submitted
        widgets.generate_into_session(
            lambda cb: model.generate(fg_settings, callback=cb),
            sets,
            fg_name,
            "patients",
            "Latent DDPM steps",
        )
elif model is not None:
    with st.form("generate"):
        c1, c2, c3, c4 = st.columns(4)
        n = c1.number_input(
            "Records",
            1,
            MAX_RECORDS,
            1000,
            key="gen_n",
            help=f"At most {MAX_RECORDS:,} per run (memory-safe limit).",
        )
        sampler = c2.selectbox(
            "Sampler",
            ("dpmpp_2m", "heun"),
            key="gen_sampler",
            format_func=lambda s: {
                "dpmpp_2m": "DPM-Solver++(2M) (fast)",
                "heun": "Heun (EHRDiff default)",
            }[s],
        )
        steps = c3.number_input(
            "Steps",
            1,
            1000,
            10,
            key="gen_steps",
            help="Heun uses 2 network evaluations per step; DPM-Solver++(2M) one.",
        )
        seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key="gen_seed")
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
            "records",
            "gen",
        )
        name = st.text_input(
            "Name of this synthetic set",
            "",
            key="gen_name",
            placeholder="e.g. ICU stays, DPM 16 steps",
        )
        go = st.form_submit_button("Generate", type="primary")
    if go:
        settings = GenerationSettings(
            n=int(n),
            sampler=sampler,
            steps=int(steps),
            seed=int(seed),
            guidance=guidance,
            label_mix=mix if model.n_classes else None,
            schedule=None if schedule == "auto" else schedule,
        )
        widgets.generate_into_session(
            lambda cb: model.generate(settings, callback=cb),
            sets,
            name.strip() or f"{model.model_id} · {sampler} {steps} steps · seed {seed}",
            "records",
            f"Sampling ({network_evaluations(sampler, int(steps))} network evaluations per record)",
        )

# --- generated sets -----------------------------------------------------------------------------
if sets:
    st.divider()
    st.subheader("Synthetic sets in this session")
    view = st.selectbox("Show", list(sets), key="gen_view")
    synth = sets[view]
    stem = export.file_stem(view)
    if synth.cohort is not None:
        s = synth.settings
        st.caption(
            f"{synth.table.n_records:,} patients from `{synth.model_id}` · DDPM {s.steps} steps, seed {s.seed}"
            f"{f', guidance {s.guidance:g}' if s.label_mix else ''} · {synth.seconds:.1f} s. "
            "Synthetic data: not real patients."
        )
        flexgen_view.show_patients(synth, stem)
        if train_table is not None:
            try:
                enc = state.train_encoding()
                result = dimension_wise_probability(
                    enc.encode(train_table), enc.encode(synth.table), enc.dim_names
                )
                st.plotly_chart(
                    gfigs.prevalence_scatter(result, "session training split, per-stay summaries"),
                    key="fg_scatter",
                )
            except CoreError:
                st.caption("The session cohort has other columns; no comparison shown.")
        if st.button("Remove this set", key="fg_remove"):
            del sets[view]
            st.rerun()
        st.stop()
    frame = synth.table.to_frame()
    s = synth.settings
    if s is None:  # an upload or a baseline: no model sampled it
        st.caption(f"{synth.table.n_records:,} records: {synth.model_id}.")
    else:
        st.caption(
            f"{synth.table.n_records:,} records from `{synth.model_id}` · {s.sampler}, {s.steps} steps, "
            f"{s.schedule_name} schedule, seed {s.seed}"
            f"{f', guidance {s.guidance:g}' if s.label_mix else ''} · {synth.seconds:.1f} s "
            f"({synth.table.n_records / max(synth.seconds, 1e-9):,.0f} records/s). Synthetic data: not real patients."
        )
    st.dataframe(frame.head(200), hide_index=True, key="gen_preview")
    ref_model = session_models.get(synth.model_id) or (
        model if model is not None and model.model_id == synth.model_id else None
    )
    enc_names = ref_model.encoding.dim_names if ref_model is not None else None
    result, reference = None, ""
    if train_table is not None and ref_model is not None:
        try:
            result = dimension_wise_probability(
                ref_model.encoding.encode(train_table), synth.vectors, enc_names
            )
            reference = "session training split"
        except CoreError:
            result = None
    if result is None and ref_model is not None and ref_model.reference_means is not None:
        result = dimension_wise_probability_from_means(
            ref_model.reference_means, synth.vectors.mean(axis=0), enc_names, 0, len(synth.vectors)
        )
        reference = "model's training data (aggregate)"
    c1, c2 = st.columns(2)
    if result is not None:
        c1.plotly_chart(gfigs.prevalence_scatter(result, reference), key="gen_scatter")
    if synth.table.codes is not None:
        real_counts = None
        if train_table is not None and train_table.codes is not None and compatible:
            real_counts = train_table.codes.codes_per_record()
        c2.plotly_chart(
            gfigs.codes_per_record_overlay(real_counts, synth.table.codes.codes_per_record()),
            key="gen_codes",
        )
    d1, d2, d3 = st.columns([1, 1, 2])
    d1.download_button(
        "Download CSV", export.to_csv_bytes(frame), f"{stem}.csv", "text/csv", key="gen_dl_csv"
    )
    d2.download_button(
        "Download Parquet",
        export.to_parquet_bytes(frame),
        f"{stem}.parquet",
        "application/octet-stream",
        key="gen_dl_parquet",
    )
    if d3.button("Remove this set", key="gen_remove"):
        del sets[view]
        st.rerun()
