"""Figures of visit-sequence cohorts: visits per patient, gaps, top codes, one patient's timeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.data.icd_text import describe
from core.data.visits import VisitCohort

_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 50, "b": 10}}
_COLOURS = {"real": "#1f6f8b", "synthetic": "#e07a5f"}


def code_text(modality: str, code: str) -> str:
    """The ICD description of a diagnosis code ('' for other modalities, whose codes such as
    drug names or free-text paths are read as they are). A MEDS code keeps its vocabulary
    (``ICD10//I10``), which says the revision."""
    code = str(code)
    if "diag" not in modality.lower() and "ICD" not in code.upper():
        return ""
    system, _, bare = code.rpartition("//")
    return describe(bare, system.upper())


def with_text(modality: str, code: str, width: int = 60) -> str:
    """'427 · Cardiac dysrhythmias' (cut to ``width``), or the code alone."""
    text = code_text(modality, code)
    if not text:
        return str(code)
    label = f"{code} · {text}"
    return label if len(label) <= width else label[: width - 1].rstrip() + "…"


def visits_per_patient(sets: dict[str, VisitCohort]) -> go.Figure:
    """Share of patients by number of visits, one bar series per set (e.g. real, synthetic)."""
    fig = go.Figure()
    for name, cohort in sets.items():
        counts = np.bincount(cohort.visits_per_patient())
        share = counts / counts.sum()
        k = np.flatnonzero(share)
        fig.add_bar(x=k, y=share[k], name=name, marker_color=_COLOURS.get(name))
    fig.update_layout(
        title="Visits per patient",
        xaxis_title="visits",
        yaxis_title="share of patients",
        barmode="group",
        **_LAYOUT,
    )
    return fig


def gaps(sets: dict[str, VisitCohort]) -> go.Figure:
    """Histogram of the known gaps between consecutive visits, log scale in days."""
    fig = go.Figure()
    for name, cohort in sets.items():
        g = cohort.known_gaps()
        fig.add_histogram(
            x=np.log10(np.maximum(g, 1e-3)),
            name=f"{name} ({len(g):,} gaps)",
            histnorm="probability",
            opacity=0.6,
            marker_color=_COLOURS.get(name),
            nbinsx=40,
        )
    ticks = [-2, -1, 0, 1, 2, 3]
    fig.update_layout(
        title="Gap between consecutive visits",
        barmode="overlay",
        yaxis_title="share",
        xaxis={
            "title": "days (log scale)",
            "tickvals": ticks,
            "ticktext": ["0.01", "0.1", "1", "10", "100", "1000"],
        },
        **_LAYOUT,
    )
    return fig


def top_codes(cohort: VisitCohort, modality: str, k: int = 15) -> go.Figure:
    """The ``k`` codes of ``modality`` held by most patients (aggregate counts only)."""
    ev = cohort.events[cohort.events["modality"] == modality]
    patients = pd.DataFrame({"p": cohort.visit_patient[ev["visit"].to_numpy()], "c": ev["code"]})
    counts = patients.drop_duplicates().groupby("c").size().sort_values().tail(k)
    fig = go.Figure(
        go.Bar(
            x=counts.to_numpy() / cohort.n_patients,
            y=[with_text(modality, c, 42) for c in counts.index],
            orientation="h",
            customdata=[[c, code_text(modality, c)] for c in counts.index],
            hovertemplate="%{customdata[0]} %{customdata[1]}<br>%{x:.1%} of patients"
            "<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Most common {modality} codes", xaxis_title="share of patients", **_LAYOUT
    )
    return fig


def timeline(cohort: VisitCohort, patient: int, title: str = "") -> go.Figure:
    """One patient's visits on a time axis, one row per modality, a marker per code."""
    visits = np.flatnonzero(cohort.visit_patient == patient)
    days = cohort.days_since_first()
    ev = cohort.events[cohort.events["visit"].isin(visits)]
    rows = list(cohort.modalities)
    fig = go.Figure()
    for m in rows:
        part = ev[ev["modality"] == m]
        per_visit = part.groupby("visit")["code"].apply(
            lambda c, m=m: "<br>".join(with_text(m, code) for code in c.astype(str))
        )
        x = days[per_visit.index.to_numpy()]
        n = part.groupby("visit").size().reindex(per_visit.index).to_numpy()
        fig.add_scatter(
            x=x,
            y=[m] * len(x),
            mode="markers",
            name=m,
            text=per_visit.to_numpy(),
            marker={"size": 8 + 2 * np.sqrt(n), "opacity": 0.8},
            hovertemplate="day %{x:.1f}<br>%{text}<extra>" + m + "</extra>",
        )
    unknown = np.isnan(cohort.gap_days[visits[1:]]) if len(visits) > 1 else np.array([], bool)
    for v in visits:
        fig.add_vline(x=days[v], line={"color": "#c8ced6", "width": 1})
    note = f" · {int(unknown.sum())} gap(s) unknown, drawn as 0" if unknown.any() else ""
    fig.update_layout(
        title=title or f"{cohort.patient_ids[patient]}: {len(visits)} visits{note}",
        xaxis_title="days since the first visit",
        yaxis={"categoryorder": "array", "categoryarray": rows},
        showlegend=False,
        **_LAYOUT,
    )
    return fig
