"""Generate: pick or train a model (EHRDiff or FLEXGEN-EHR), generate synthetic records, inspect and
download them."""

import streamlit as st

from core.device import select_device
from core.errors import CoreError
from ui import ehrdiff_view, ehrpd_view, errors, flexgen_view, models, state, training, widgets

with errors.guard("The Generate page"):  # nothing raw reaches the browser
    VIEWS = {view.FAMILY: view for view in (ehrdiff_view, flexgen_view, ehrpd_view)}

    widgets.device_sidebar()
    st.title("Generate")
    st.caption(
        "Synthetic records come from a diffusion model: EHRDiff (one vector per record), FLEXGEN-EHR "
        "(complete patients: static row plus hourly series) or EHRPD (patients with visit sequences "
        "and the gaps between visits). Pick a shipped model or train one on the session cohort's "
        "training split, then generate as many records as you need."
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
    stored = {f"{m.name} (stored)": m for m in models.stored_generators()}
    options = list(shipped) + list(stored)
    if not options:
        st.info("No model yet: load a cohort on the Cohort page and train one below.")
    choice = st.selectbox("Model", options, key="gen_model") if options else None
    model = distilled = None
    if choice in stored:
        try:
            model = models.stored_model(stored[choice], str(device))
        except CoreError as exc:
            widgets.show_error(exc, "Loading the model")
    elif choice is not None:
        try:
            spec = shipped[choice]
            model = models.shipped_model(spec.family, spec.checkpoint, str(device))
            distilled = models.distilled_companion(spec, str(device))
        except CoreError as exc:
            widgets.show_error(exc, "Loading the model")
    if model is not None and model.manifest is not None:
        models.model_card(model.manifest, shipped[choice].description if choice in shipped else "")

    compatible = False
    target = None if model is None else VIEWS[model.family].session_cohort()
    if model is not None and target is not None:
        try:
            model.check_compatible(target)
            compatible = True
        except CoreError as exc:
            st.caption(
                f":material/info: The session cohort does not fit this model ({exc}); comparisons use "
                "the model's own reference."
            )

    # --- training -----------------------------------------------------------------------------------
    job = training.current_job()
    # Open while this user has a training, running or done: its result (where it was saved) is in here.
    with st.expander(
        "Train a model on the session cohort", expanded=not options or job is not None
    ):
        visit_train = state.visit_train()
        can_flexgen = (
            train_table is not None and cohort.static is not None and cohort.temporal is not None
        )
        families = [ehrdiff_view.FAMILY] if train_table is not None else []
        families += [flexgen_view.FAMILY] if can_flexgen else []
        families += [ehrpd_view.FAMILY] if visit_train is not None else []
        if state.last_loaded() == "visits" and ehrpd_view.FAMILY in families:
            families.remove(ehrpd_view.FAMILY)  # the cohort in use first: its family is preset
            families.insert(0, ehrpd_view.FAMILY)
        if not families:
            st.info(
                "Load a cohort on the Cohort page first; training uses its training split only."
            )
        else:
            family = st.radio(
                "Model family",
                families,
                format_func=lambda f: VIEWS[f].TITLE,
                horizontal=True,
                key="train_family",
                help="EHRDiff and FLEXGEN-EHR train on the record cohort (FLEXGEN-EHR needs static "
                "features and time series); EHRPD on the visit-sequence cohort.",
            )
            sequences = family == ehrpd_view.FAMILY
            source = state.get_visits() if sequences else cohort
            size = (
                f"{visit_train.n_patients:,} training patients"
                if sequences
                else f"{len(split.train):,} training records"
            )
            st.caption(f"Trains on **{source.name}**: its training split, {size}.")
            if family == flexgen_view.FAMILY:
                plan = flexgen_view.training_form(cohort.subset(split.train), device)
            elif family == ehrpd_view.FAMILY:
                plan = ehrpd_view.training_form(visit_train, device)
            else:
                plan = ehrdiff_view.training_form(
                    train_table,
                    cohort.label_name,
                    model,
                    compatible,
                    device,
                    patient_ids=cohort.patient_ids[split.train],
                )
            source_split = state.get_visit_split() if sequences else split
            training.start_button(plan, source, source_split, key=f"{family}_train_start")
        training.progress_panel()

    # --- generation ---------------------------------------------------------------------------------
    sets = state.synthetic_sets()
    before = dict(sets)
    form = None  # the settings the form holds now
    if distilled is not None:
        form = ehrdiff_view.generation_form(model, sets, distilled)
    elif model is not None:
        form = VIEWS[model.family].generation_form(model, sets)
    # A set is bound to the model and settings that made it, so that a set shown after either
    # changed says it is from the previous ones.
    made_with = {} if model is None else {"model": state.Input("the model", f"`{choice}`", choice)}
    made_with |= {} if form is None else state.settings_inputs(form)
    for name in [n for n in sets if before.get(n) is not sets[n]]:
        if compatible:  # written in the session cohort's label names, so a download reads back
            sets[name] = sets[name].labelled_as(target.label_classes)
        state.keep_generated(name, made_with)

    # --- generated sets -----------------------------------------------------------------------------
    if sets:
        st.divider()
        st.subheader("Synthetic sets in this session")
        view = st.selectbox("Show", list(sets), key="gen_view", format_func=state.set_label)
        synth = sets[view]
        made = state.generated(view, made_with)
        if made is not None and made.stale:
            st.info(
                f"**{view}** is from the previous settings: "
                + "; ".join(made.changes)
                + ". Press **Generate** for a set made with the settings above.",
                icon=":material/history:",
            )
        if synth.visits is not None:  # patients with visit sequences
            ehrpd_view.show_sequences(synth, view)
        elif synth.cohort is not None:  # complete patients: static row + series
            flexgen_view.show_patients(synth, view, train_table, state.train_encoding())
        else:
            reference = (
                model if model is not None and models.made_by(model, distilled, synth) else None
            )
            ehrdiff_view.show_records(synth, view, reference, train_table, compatible)
        if st.button("Remove this set", key="gen_remove"):
            del sets[view]
            state.drop_bound(state.GENERATED + view)
            st.rerun()
