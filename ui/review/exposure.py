"""The steward's per-patient view of a reviewed set (shown in this session only, never exported):
the training patients the strongest attack of the review names, and a privacy-filtered copy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from core.generation import SyntheticSet
from core.metrics.exposure import ATTACKS, attack_auroc, patient_exposure, strongest_attack
from core.metrics.privacy import privacy_filter
from core.metrics.suite import Review
from ui import state
from ui.review.reference import RealReference


def exposure_panel(ref: RealReference, review: Review, synth: SyntheticSet) -> None:
    """The training patients a synthetic set exposes most, ranked by the strongest attack the
    review ran and calibrated on holdout patients; one patient's record beside its nearest
    synthetic records. Shown in this session only; never part of the report or the release."""
    name = review.name
    key = f"css.exposure.{name}.{id(synth)}"  # a regenerated set of the same name starts afresh
    with st.expander(f"Most exposed training patients ({name}): steward's view, not exported"):
        strongest = strongest_attack(review)
        aurocs = {n: attack_auroc(review, n) for n in ATTACKS}
        attack = st.radio(
            "Rank by",
            list(ATTACKS),
            index=list(ATTACKS).index(strongest),
            format_func=lambda n: (
                ATTACKS[n].label
                + ("" if aurocs[n] is None else f" (AUROC {aurocs[n]:.3f})")
                + (" — strongest in this review" if n == strongest else "")
            ),
            horizontal=True,
            key=f"exposure_attack_{name}",
        )
        st.caption(
            f"For every training patient: the attack's score ({ATTACKS[attack].score}) and the "
            "share of holdout patients, whom the model never saw, that it finds at least as "
            "member-like (p; small = exposed beyond chance)."
        )
        if st.button("Compute the per-patient ranking", key=f"exposure_{name}"):
            enc = ref.encoding
            st.session_state[key] = (
                attack,
                patient_exposure(
                    enc.encode(ref.train),
                    enc.encode(ref.holdout),
                    enc.encode(synth.table),
                    attack=attack,
                ),
            )
        computed = st.session_state.get(key)
        if computed is not None:
            by, exposed = computed
            if by != attack:
                st.caption(
                    f"Ranked by the {ATTACKS[by].label}; press the button to rank by the "
                    f"{ATTACKS[attack].label}."
                )
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
        top[["record", "score", "holdout_p", "nearest_distance"]],
        hide_index=True,
        key=f"exp_{name}",
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
