"""The Review page's sections: one renderer per section of core's :data:`SECTIONS`, drawn in that
order (the order the HTML report has too)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.metrics import specs as metric_specs
from core.metrics.ids import MetricId
from core.metrics.suite import best_column
from core.report import export
from core.report import review_figures as rf
from core.report.review_report import (
    AUDIT_NOTE,
    anonymeter_results,
    audit_frame,
    battery_frame,
    battery_note,
    column_frame,
    figures_for,
    how_computed,
    to_json,
    validity_text,
)
from core.report.review_sections import SECTIONS, ReviewDocument, Section, build_html
from ui.review import detection, exposure, gate, release
from ui.review.reference import RealReference


@dataclass(frozen=True)
class PageView:
    doc: ReviewDocument
    ref: RealReference
    sets: dict  # the session's sets, by name
    stale: bool  # the review is out of date: no figures, release or report of it


def _summary(section: Section, view: PageView) -> None:
    reviews, names, summary = view.doc.reviews, view.doc.names, view.doc.summary
    st.subheader(section.title)

    def highlight(row: pd.Series) -> list[str]:
        best = best_column(row, names)
        return [
            "background-color: #dff2e6; font-weight: 600" if c == best and len(names) > 1 else ""
            for c in row.index
        ]

    st.dataframe(
        summary.style.apply(highlight, axis=1).format({n: "{:.4g}" for n in [*names, "ideal"]}),
        hide_index=True,
        column_config={"id": None, "spec": None},
        key="review_summary",
    )
    st.caption("Highlighted: the value closest to the ideal in each row.")
    with st.expander("What the metrics mean"):
        for spec_id in dict.fromkeys(summary["spec"]):
            st.markdown(f"**{metric_specs.title(spec_id)}.** {metric_specs.explanation(spec_id)}")
    for rv in reviews:
        if how := how_computed(rv):
            st.caption(f"{rv.name}: {how}")
        if rv.skipped:
            st.caption(
                f"{rv.name}: not computed: "
                + "; ".join(f"{metric_specs.title(k)} ({v})" for k, v in rv.skipped.items())
            )
        if rv.subsampled_from:
            st.caption(
                f"{rv.name}: reviewed on a random subsample of {rv.n_records:,} of {rv.subsampled_from:,} records."
            )


def _overview(section: Section, view: PageView) -> None:
    reviews = view.doc.reviews
    mmd = {rv.name: rv.get(MetricId.MMD) for rv in reviews if rv.get(MetricId.MMD) is not None}
    if mmd:
        st.plotly_chart(rf.mmd_bars(mmd), key="review_mmd_bars")
    risks = anonymeter_results(reviews)
    if risks:
        st.plotly_chart(rf.anonymeter_risks(risks), key="review_anonymeter")
        st.caption(
            "Anonymeter (Giomi et al., PoPETs 2023): how much more often each attack succeeds on "
            "training patients than on holdout patients the generator never saw, out of what was "
            "left to gain. Hover for the success rates behind each risk."
        )


def _attacks(section: Section, view: PageView) -> None:
    attacks, audits = battery_frame(view.doc.reviews), audit_frame(view.doc.audits)
    if attacks.empty and audits.empty:
        return
    st.subheader(section.title)
    if not attacks.empty:
        st.table(attacks.set_index(["set", "attack"]))  # a few rows: drawn whole, wrapping
        st.caption(battery_note(view.doc.reviews))
    if not audits.empty:
        st.markdown("**Offline audits of the models that made these sets**")
        st.table(audits.set_index(["set", "audit"]))
        st.caption(AUDIT_NOTE)


def _figures(section: Section, view: PageView) -> None:
    if view.stale:  # the figures would draw today's cohort and sets beside the old results
        st.caption("The figures return when the review is run again.")
        return
    reviews, codes = view.doc.reviews, view.doc.codes
    for col, rv in zip(st.columns(len(reviews)), reviews, strict=True):
        real_c, syn_c = codes[rv.name]
        with col:
            st.markdown(f"#### {rv.name}")
            for i, fig in enumerate(figures_for(rv, real_c, syn_c)):
                st.plotly_chart(fig, key=f"review_fig_{rv.name}_{i}")


def _columns(section: Section, view: PageView) -> None:
    per_column = {rv.name: rv.get(MetricId.COLUMN_FIDELITY) for rv in view.doc.reviews}
    per_column = {name: res for name, res in per_column.items() if res is not None}
    if not per_column:
        return
    st.subheader(section.title)
    st.caption(
        "Every column's real and synthetic values compared on their own, worst first; click a "
        "header to sort. KS above 0.10 (or total variation for categories) is visible to a "
        "reader; an off-support share above 0 means values no real record has (a GCS of 11.37)."
    )
    for tab, (name, res) in zip(st.tabs(list(per_column)), per_column.items(), strict=True):
        with tab:
            st.dataframe(
                column_frame(res).style.format(precision=3, na_rep=""),
                hide_index=True,
                key=f"review_columns_{name}",
            )


def _validity(section: Section, view: PageView) -> None:
    """Each set's validity with the broken rules, most records first (core.metrics.validity)."""
    reviews = view.doc.reviews
    results = {
        rv.name: rv.get(MetricId.VALIDITY)
        for rv in reviews
        if rv.get(MetricId.VALIDITY) is not None
    }
    if not results:
        return
    st.subheader(section.title)
    for col, (name, res) in zip(st.columns(len(results)), results.items(), strict=True):
        with col:
            st.markdown(f"**{name}**: {validity_text(res)}")
            if len(res.per_feature):
                st.dataframe(
                    res.per_feature.rename(
                        columns={
                            "constraint": "broken rule",
                            "records": "records",
                            "share": "share",
                        }
                    ).drop(columns="kind"),
                    hide_index=True,
                    column_config={"share": st.column_config.NumberColumn(format="percent")},
                    key=f"review_validity_{name}",
                )


def _exposure(section: Section, view: PageView) -> None:
    for rv in [] if view.stale else view.doc.reviews:  # they compute on today's cohort and sets
        exposure.exposure_panel(view.ref, rv, view.sets[rv.name])


def _export(section: Section, view: PageView) -> None:
    doc, stale = view.doc, view.stale
    st.subheader(section.title)
    if stale:
        st.caption("The report and metrics are downloadable again once the review is rerun.")
    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "Download HTML report",
        lambda: build_html(doc).encode("utf-8"),
        "synthetic_review.html",
        "text/html",
        on_click="ignore",  # deferred file: a rerun would race its fetch
        key="review_dl_html",
        disabled=stale,
    )
    d2.download_button(
        "Download metrics (JSON)",
        lambda: to_json(doc.reviews, doc.context, doc.verdicts).encode("utf-8"),
        "synthetic_review.json",
        "application/json",
        on_click="ignore",
        key="review_dl_json",
        disabled=stale,
    )
    d3.download_button(
        "Download metrics (CSV)",
        export.to_csv_bytes(doc.summary),
        "synthetic_review.csv",
        "text/csv",
        key="review_dl_csv",
        disabled=stale,
    )


# the page's renderer of each section of SECTIONS shown on the page
PAGE = {
    "summary": _summary,
    "overview": _overview,
    "attacks": _attacks,
    "figures": _figures,
    "columns": _columns,
    "validity": _validity,
    "detection": lambda section, view: detection.detection_panel(section.title, view.doc.reviews),
    "gate": lambda section, view: gate.gate_verdicts(view.doc.verdicts),  # heading: gate_controls
    "exposure": _exposure,
    "release": lambda section, view: release.release_panel(view.doc, view.sets, view.stale),
    "export": _export,
}


def slots() -> dict[str, DeltaGenerator]:
    """A container per page section, in :data:`SECTIONS` order, so that a section can be filled
    before the ones above it (the gate's thresholds come before the verdicts they decide)."""
    return {s.id: st.container() for s in SECTIONS if s.on_page}


def render(held: dict[str, DeltaGenerator], view: PageView) -> None:
    """Each page section into its container."""
    for s in SECTIONS:
        if s.on_page:
            with held[s.id]:
                PAGE[s.id](s, view)
