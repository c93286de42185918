"""Review: fidelity, utility and privacy of synthetic sets side by side, with an exportable report."""

import streamlit as st

from core.report.review_sections import review_document, section
from ui import errors, models, state, widgets
from ui.review import cache, gate, sections
from ui.review.reference import reference
from ui.review.setup import setup_panel

with errors.guard("The Review page"):  # nothing raw reaches the browser
    widgets.device_sidebar()
    st.title("Review")
    st.caption(
        "Compare synthetic sets with the real cohort: fidelity and utility against the training split, privacy "
        "against training (members) vs holdout (non-members) patients."
    )
    ref = reference()
    if ref is None:
        st.info(
            "Load a cohort on the Cohort page first (the demo cohort works); its split is what the review compares against."
        )
        st.stop()
    sets = state.synthetic_sets()
    setup = setup_panel(ref, sets)
    if setup.run:
        cache.run_reviews(ref, setup.chosen, sets, setup.settings)

    # bound to the cohort, split, sets and settings on the page now
    stored = cache.kept_reviews(ref, sets, setup.settings)
    if not stored:
        st.info(
            "Choose one or more synthetic sets and press **Run review**. Generate sets on the Generate page, upload one, or add the baseline."
        )
        st.stop()
    names, reviews, used = stored.value
    if stored.stale:
        st.warning(
            "**This review is out of date:** "
            + "; ".join(stored.changes)
            + ". Run the review again: releasing and the report are disabled until then.",
            icon=":material/update:",
        )
    elif sorted(setup.chosen) != sorted(names):
        st.caption(
            "The sets chosen above differ from the ones reviewed below; press **Run review** to "
            "review the choice."
        )
    reviews = [r for r in reviews if r.name in names and r.name in sets]
    if not reviews:
        st.stop()

    held = sections.slots()  # one per section, in the order core's SECTIONS gives
    with held["gate"]:
        thresholds = gate.gate_controls(section("gate").title)
    doc = review_document(
        reviews, ref.cohort, ref.split, used, sets, ref.train, thresholds,
        audits=models.audits_of_sets(sets),
    )  # fmt: skip
    sections.render(held, sections.PageView(doc, ref, sets, stored.stale))
