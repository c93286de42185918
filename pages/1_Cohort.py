"""Cohort: load a cohort in a clinical format, validate it, summarise it, split it by patient."""

import os

import streamlit as st

from core.data.cohort import split_cohort
from core.data.demo import list_demos, load_demo
from core.data.formats import FORMATS, NamedInput, load_cohort
from core.data.io import list_data_files, resolve_inside
from core.data.visits import VisitCohort
from core.errors import CoreError
from core.report import cohort_figures as figs
from ui import cohort_forms, ehrpd_view, errors, state, widgets

LOADED_NOTE = "css.cohort_loaded_note"  # the toast of a load, shown after the rerun it needs

with errors.guard("The Cohort page"):  # nothing raw reaches the browser
    st.set_page_config(
        page_title="Cohort · Clinical Synthesis Studio",
        page_icon=":material/groups:",
        layout="wide",
    )
    widgets.device_sidebar()
    st.title("Cohort")
    st.caption(
        "Load the real cohort that models are trained on and that synthetic data is compared with. "
        "Files are read in memory and are not stored on the server."
    )

    data_root = os.environ.get("CSS_DATA_ROOT", "")
    demos = {d.title: d for d in list_demos()}
    with st.container(border=True):
        sources = (["Demo cohort"] if demos else []) + ["Upload"]
        if data_root and os.path.isdir(data_root):
            sources.append("Files on this server")
        mode = st.radio("Source", sources, horizontal=True, key="cohort_source_mode")
        demo = None
        inputs: dict[str, NamedInput] = {}
        options: dict = {}
        if mode == "Demo cohort":
            demo = demos[st.selectbox("Demo cohort", list(demos), key="cohort_demo")]
            st.caption(
                demo.description + " Made by this project's models: no real patient is in it."
            )
        else:
            format_id = st.selectbox(
                "Format", list(FORMATS), format_func=lambda k: FORMATS[k].title, key="cohort_format"
            )
            fmt = FORMATS[format_id]
            st.caption(fmt.description)
            for slot in fmt.inputs:
                if mode == "Upload":
                    up = st.file_uploader(
                        slot.label,
                        type=list(slot.extensions),
                        key=f"upload_{format_id}_{slot.key}",
                        help=f"Up to {state.upload_limit_mb()} MB per file.",
                    )
                    if up is not None:
                        inputs[slot.key] = NamedInput(up.name, up.getvalue())
                else:
                    choices = ["(none)", *list_data_files(data_root, slot.extensions)]
                    pick = st.selectbox(slot.label, choices, key=f"server_{format_id}_{slot.key}")
                    if pick != "(none)":
                        inputs[slot.key] = NamedInput(
                            os.path.basename(pick), resolve_inside(data_root, pick)
                        )
            if mode == "Upload":
                st.caption(f"Uploads are limited to {state.upload_limit_mb()} MB per file.")
            options = cohort_forms.options_for(format_id)
        c1, c2, c3 = st.columns([1, 1, 2])
        holdout = c1.slider(
            "Holdout share",
            0.05,
            0.5,
            0.2,
            0.05,
            key="split_fraction",
            help="Patients kept out of training; privacy and utility are measured against them.",
        )
        seed = int(c2.number_input("Split seed", 0, 2**31 - 1, 0, key="split_seed"))
        load = c3.button(
            "Load cohort", type="primary", disabled=not (inputs or demo), width="stretch"
        )

    if load:
        bar = st.progress(0.0, text="Reading files")
        try:
            if demo is not None:
                cohort = load_demo(demo)
            else:
                cohort = load_cohort(
                    format_id,
                    inputs,
                    options,
                    callback=widgets.progress_callback(bar, "Reading records"),
                )
            if isinstance(cohort, VisitCohort):
                state.set_visits(cohort)
                loaded = f"{cohort.n_patients:,} patients with {cohort.n_visits:,} visits"
            else:
                state.set_cohort(cohort)
                loaded = f"{cohort.n_records:,} records"
            st.session_state[LOADED_NOTE] = f"Loaded {loaded}"
        except CoreError as exc:
            widgets.show_error(exc, "Loading the cohort")
        finally:
            bar.empty()
        if LOADED_NOTE in st.session_state:
            st.rerun()  # the sidebar's cohort switcher, drawn before the load, now lists it
    if LOADED_NOTE in st.session_state:
        st.toast(st.session_state.pop(LOADED_NOTE), icon=":material/check_circle:")

    held = state.shelf()
    if len(held) > 1:  # the cohorts of this session stay loaded; the sidebar switches
        active = state.active_shelf_name()
        st.caption(
            ":material/shelves: Loaded in this session: "
            + "; ".join(
                f"**{n}**" + (" (shown)" if n == active else "") + f" ({e.kind})"
                for n, e in held.items()
            )
            + ". Switch with **Session cohort** in the sidebar; Generate and Review use the "
            "one chosen."
        )

    visits = state.get_visits()
    if visits is not None and state.last_loaded() == "visits":
        split = state.get_visit_split()
        if split is None or (split.holdout_fraction, split.seed) != (holdout, seed):
            try:
                state.set_visit_split(visits.split(holdout, seed))
            except CoreError as exc:
                widgets.show_error(exc, "Splitting the cohort")
        ehrpd_view.summary(visits)
        st.stop()

    cohort = state.get_cohort()
    if cohort is None:
        st.info(
            "No cohort loaded yet. Choose a demo cohort or your files above, then press **Load cohort**."
        )
        st.stop()

    split = state.get_split()
    if split is None or (split.holdout_fraction, split.seed) != (holdout, seed):
        try:
            split = split_cohort(cohort, holdout, seed)
            state.set_split(split)
        except CoreError as exc:
            widgets.show_error(exc, "Splitting the cohort")

    summary = state.cohort_summary()
    st.subheader(cohort.name)
    m = st.columns(4)
    m[0].metric("Records", f"{summary.n_records:,}")
    m[1].metric("Patients", f"{summary.n_patients:,}")
    m[2].metric(
        "Features",
        f"{len(summary.features) + (0 if cohort.codes is None else len(cohort.codes.vocabulary)):,}",
    )
    if summary.label_counts is not None:
        positive = summary.label_counts.iloc[min(1, len(summary.label_counts) - 1)]
        m[3].metric(
            f"{summary.label_name} = {positive['class']}",
            f"{positive['records']:,} ({positive['share']:.1%})",
        )
    else:
        m[3].metric("Label", "none")
    parts = []
    if cohort.static is not None:
        parts.append(f"static ({len(cohort.static_features)} features)")
    if cohort.temporal is not None:
        t = cohort.temporal
        parts.append(
            f"temporal ({len(t.variables)} variables x {t.n_steps} steps of {t.step_hours:g} h)"
        )
    if cohort.codes is not None:
        parts.append(
            f"codes ({len(cohort.codes.vocabulary):,} {cohort.codes.system}, {cohort.codes.granularity})"
        )
    st.caption("Parts: " + "; ".join(parts) + f". Source: {cohort.source}.")
    for note in cohort.notes:
        st.caption(f":material/info: {note}")
    flagged = summary.implausible
    if flagged is not None and len(flagged):
        n = int(flagged["below"].sum() + flagged["above"].sum())
        st.warning(
            f"**{n:,} value(s) in {len(flagged)} column(s) lie outside physiological ranges** "
            f"({', '.join(flagged['column'][:4])}{', ...' if len(flagged) > 4 else ''}): "
            "likely unit or entry errors. They are kept as loaded; models learn them too.",
            icon=":material/warning:",
        )
        with st.expander("Values outside physiological ranges, by column"):
            st.dataframe(
                flagged,
                hide_index=True,
                key="cohort_implausible",
                column_config={
                    "share of values": st.column_config.NumberColumn(format="percent"),
                },
            )
            st.caption(
                "Counts of observed values per column, with the column's lowest and highest "
                "value; no record is named. Ranges: core/data/clinical.py (docs/pages.md)."
            )

    if split is not None:
        with st.expander(
            f"Train/holdout split: {len(split.train):,} / {len(split.holdout):,} records "
            f"({split.n_train_patients:,} / {split.n_holdout_patients:,} patients, seed {split.seed}"
            f"{', stratified on the label' if split.stratified else ''})",
            expanded=False,
        ):
            st.plotly_chart(figs.split_overview(split, cohort.labels, cohort.label_classes))

    tabs = st.tabs(["Features", "Missingness", "Codes" if cohort.codes is not None else "Label"])
    with tabs[0]:
        st.dataframe(figs.feature_table(summary), width="stretch", hide_index=True)
    with tabs[1]:
        if summary.static_missing is not None:
            st.plotly_chart(figs.static_missingness(summary))
        if summary.temporal_observed is not None:
            st.plotly_chart(figs.temporal_missingness(summary))
        if summary.static_missing is None and summary.temporal_observed is None:
            st.write("Code matrices have no missing values: an absent code means 'not recorded'.")
    with tabs[2]:
        if summary.label_counts is not None:
            st.plotly_chart(figs.label_balance(summary))
        if cohort.codes is not None:
            st.caption(
                f"{len(cohort.codes.vocabulary):,} distinct codes ({cohort.codes.system}, {cohort.codes.granularity})."
            )
            c1, c2 = st.columns(2)
            c1.plotly_chart(figs.top_codes(summary))
            c2.plotly_chart(figs.codes_per_record(summary))
