"""The steward's per-patient view of a reviewed set (shown in this session only, never exported):
the training patients it sits closest to, and a privacy-filtered copy without those records."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from core.generation import SyntheticSet
from core.metrics.privacy import patient_exposure, privacy_filter
from ui import state
from ui.review.reference import RealReference


def exposure_panel(ref: RealReference, name: str, synth: SyntheticSet) -> None:
    """The training patients a synthetic set sits closest to, ranked by how unusual that
    closeness is for unseen (holdout) patients; one patient's record beside its nearest
    synthetic records. Shown in this session only; never part of the report or the release."""
    key = f"css.exposure.{name}.{id(synth)}"  # a regenerated set of the same name starts afresh
    with st.expander(f"Most exposed training patients ({name}): steward's view, not exported"):
        st.caption(
            "For every training patient: the distance to the nearest synthetic record and the "
            "share of holdout patients at least as close (p; small = closer than chance)."
        )
        if st.button("Compute the per-patient ranking", key=f"exposure_{name}"):
            enc = ref.encoding
            st.session_state[key] = patient_exposure(
                enc.encode(ref.train), enc.encode(ref.holdout), enc.encode(synth.table)
            )
        exposed = st.session_state.get(key)
        if exposed is not None:
            _show_exposure(ref, name, synth, exposed)
        _filter_button(ref, name, synth)


def _filter_button(ref: RealReference, name: str, synth: SyntheticSet) -> None:
    """Adds a copy of the set without the records closer to a training patient than 99% of
    holdout patients come; reviewing both side by side shows what the filter costs."""
    if synth.cohort is not None or synth.visits is not None:
        st.caption("The privacy filter works on record tables; not on series or visit sequences.")
        return
    if not st.button("Add a privacy-filtered copy of this set", key=f"filter_{name}"):
        return
    enc = ref.encoding
    x = enc.encode(synth.table)
    keep, radius = privacy_filter(enc.encode(ref.train), enc.encode(ref.holdout), x)
    if keep.sum() < 2:
        st.warning(
            f"The filter drops {int((~keep).sum()):,} of {len(keep):,} records: every record sits "
            "closer to a training patient than unseen patients come. Nothing is left to release."
        )
        return
    sets = state.synthetic_sets()
    new = state.unique_name(f"{name} (privacy-filtered)", sets)
    sets[new] = replace(
        synth,
        table=synth.table.subset(np.flatnonzero(keep)),
        vectors=x[keep],
        origin=synth.origin
        | {
            "privacy filter": f"dropped {int((~keep).sum()):,} of {len(keep):,} records within "
            f"L1 {radius:.4g} of a training patient (the holdout's 1st percentile)"
        },
    )
    state.choose_for_review(new)
    st.toast(f"Added {new}: {int(keep.sum()):,} records kept. Run the review to compare.")


def _show_exposure(
    ref: RealReference, name: str, synth: SyntheticSet, exposed: pd.DataFrame
) -> None:
    top = exposed.head(20).assign(record=lambda f: ref.train.record_ids[f["train_row"]])
    st.dataframe(
        top[["record", "nearest_distance", "holdout_p"]], hide_index=True, key=f"exp_{name}"
    )
    st.caption(
        f"{int((exposed['holdout_p'] < 0.01).sum()):,} of {len(exposed):,} training patients have "
        "p < 0.01 (about 1% would by chance)."
    )
    pick = st.selectbox(
        "Patient", list(top.index), format_func=lambda i: top["record"][i], key=f"exp_pick_{name}"
    )
    row = top.loc[pick]
    real = (
        ref.train.subset(np.array([row["train_row"]])).to_frame().assign(source="training patient")
    )
    near = synth.table.subset(np.asarray(row["nearest"])).to_frame().assign(source="synthetic")
    st.dataframe(
        pd.concat([real, near], ignore_index=True), hide_index=True, key=f"exp_rows_{name}"
    )
