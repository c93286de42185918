"""The Review page's inputs: the sets to compare (an upload, the baseline, the session's sets
that fit the cohort) and the review settings."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.data.io import read_table
from core.data.records import table_from_frame
from core.errors import CohortError, CoreError
from core.generation import SyntheticSet
from core.metrics.baselines import independent_marginals
from core.metrics.suite import ReviewSettings
from ui import state, widgets
from ui.review.reference import RealReference


@dataclass(frozen=True)
class Setup:
    chosen: list[str]  # the sets to review, by name
    settings: ReviewSettings
    run: bool  # Run review was pressed


def _add_upload(ref: RealReference, sets: dict, column) -> None:
    upload = column.file_uploader(
        "Add a synthetic set from a file (CSV or Parquet with the cohort's columns)",
        type=["csv", "parquet", "gz"],
        key="review_upload",
        help=f"Up to {state.upload_limit_mb()} MB. Columns must match the real cohort's; the id and label columns are optional.",
    )
    if upload is None or not state.upload_is_new(upload.file_id):
        return
    try:
        frame = read_table(upload.getvalue(), upload.name)
        table = table_from_frame(frame, ref.table, upload.name)
        name = state.unique_name(f"Upload: {upload.name}", sets)
        sets[name] = SyntheticSet.from_upload(
            table, ref.encoding.encode(table), upload.name, upload.getvalue()
        )
        state.mark_upload_added(upload.file_id)
        state.choose_for_review(name)
        st.toast(f"Added {name}")
    except CoreError as exc:
        widgets.show_error(exc, "Reading the synthetic set")


def _add_baseline(ref: RealReference, sets: dict) -> None:
    st.write("Baseline")
    if not st.button(
        "Add independent-marginals baseline",
        key="review_baseline",
        help="Every column resampled independently from the training data: right marginals, no correlations.",
    ):
        return
    table, vectors = independent_marginals(
        ref.train, len(ref.split.train), seed=0, encoding=ref.encoding
    )
    name = state.unique_name("Independent marginals (baseline)", sets)
    state.choose_for_review(name)
    sets[name] = SyntheticSet.baseline(
        table,
        vectors,
        "independent marginals",
        "every column resampled independently from the training split",
        seed=0,
    )


def setup_panel(ref: RealReference, sets: dict) -> Setup:
    """The real cohort, the ways to add a set, the choice of sets and the settings (starting
    from the last review's, so that leaving the page does not put the review out of date)."""
    split = ref.split
    with st.container(border=True):
        st.markdown(
            f"**Real cohort:** {ref.cohort.name}: {len(split.train):,} training and {len(split.holdout):,} holdout {ref.unit} (seed {split.seed})."
        )
        c1, c2 = st.columns(2)
        _add_upload(ref, sets, c1)
        with c2:
            _add_baseline(ref, sets)

        compatible, reasons = [], {}
        for name, s in sets.items():
            try:
                ref.encoding.check_compatible(s.table)
                compatible.append(name)
            except CohortError as exc:
                reasons[name] = str(exc)
        for name, why in reasons.items():
            st.caption(
                f":material/block: **{state.set_label(name)}** cannot be compared with this "
                f"cohort: {why}"
            )
        state.prune_review_choice(compatible)
        chosen = st.multiselect("Synthetic sets to review", compatible, key=state.REVIEW_CHOICE)
        c1, c2, c3 = st.columns(3)
        last = state.reviewed_settings() or ReviewSettings()
        seed = int(c1.number_input("Seed", 0, 2**31 - 1, last.seed, key="review_seed"))
        mmd_sub = c2.selectbox(
            "MMD",
            ("all records (exact up to 5,000)", "subsample 2,000 records"),
            index=0 if last.mmd_max_records is None else 1,
            key="review_mmd",
        )
        boot = int(
            c3.number_input(
                "Bootstrap resamples (CIs)", 20, 2000, last.bootstrap, 20, key="review_boot"
            )
        )
        run = st.button("Run review", type="primary", disabled=not chosen, key="review_run")
    settings = ReviewSettings(
        seed=seed, mmd_max_records=None if mmd_sub.startswith("all") else 2000, bootstrap=boot
    )
    return Setup(chosen, settings, run)
