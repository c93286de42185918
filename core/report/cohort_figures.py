"""Figures of the Cohort page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.data.cohort import CohortSplit
from core.data.summary import CohortSummary

_BLUE = "#1f6f8b"
_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 50, "b": 10}}


def label_balance(summary: CohortSummary) -> go.Figure:
    counts = summary.label_counts
    if counts is None:
        raise ValueError("cohort has no label")
    fig = go.Figure(
        go.Bar(
            x=counts["class"],
            y=counts["records"],
            marker_color=_BLUE,
            text=[
                f"{r:,} ({s:.1%})" for r, s in zip(counts["records"], counts["share"], strict=True)
            ],
            textposition="outside",
        )
    )
    fig.update_layout(
        title=f"Label balance: {summary.label_name}", yaxis_title="records", **_LAYOUT
    )
    return fig


def short_label(code: str, description: str, width: int = 42) -> str:
    """'427 · Cardiac dysrhythmias' cut to ``width`` characters for an axis; the code alone when
    it has no description."""
    if not description:
        return str(code)
    label = f"{code} · {description}"
    return label if len(label) <= width else label[: width - 1].rstrip() + "…"


def top_codes(summary: CohortSummary) -> go.Figure:
    codes = summary.top_codes
    if codes is None:
        raise ValueError("cohort has no codes")
    codes = codes.iloc[::-1]
    described = codes.get("description", pd.Series([""] * len(codes), index=codes.index))
    fig = go.Figure(
        go.Bar(
            x=codes["prevalence"],
            y=[short_label(c, d) for c, d in zip(codes["code"], described, strict=True)],
            orientation="h",
            marker_color=_BLUE,
            customdata=np.column_stack([codes["records"], codes["code"], described]),
            hovertemplate="%{customdata[1]} %{customdata[2]}<br>%{x:.1%} of records "
            "(%{customdata[0]})<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Most frequent codes (top {len(codes)})",
        xaxis_title="share of records",
        xaxis_tickformat=".0%",
        height=max(320, 18 * len(codes) + 100),
        **_LAYOUT,
    )
    return fig


def codes_per_record(summary: CohortSummary) -> go.Figure:
    per = summary.codes_per_record
    if per is None:
        raise ValueError("cohort has no codes")
    fig = go.Figure(go.Histogram(x=per, marker_color=_BLUE, xbins={"size": 1}))
    fig.update_layout(
        title=f"Codes per record (mean {np.mean(per):.1f})",
        xaxis_title="distinct codes",
        yaxis_title="records",
        **_LAYOUT,
    )
    return fig


def temporal_missingness(summary: CohortSummary) -> go.Figure:
    obs = summary.temporal_observed
    if obs is None:
        raise ValueError("cohort has no temporal part")
    obs = obs.loc[obs.mean(axis=1).sort_values().index]
    fig = go.Figure(
        go.Heatmap(
            z=obs.to_numpy(),
            x=obs.columns,
            y=obs.index,
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "observed", "tickformat": ".0%"},
            hovertemplate="%{y} at %{x} h: %{z:.1%} of records<extra></extra>",
        )
    )
    fig.update_layout(
        title="Share of records with an observation, per variable and hour",
        xaxis_title="hours since admission",
        height=max(360, 16 * len(obs) + 120),
        **_LAYOUT,
    )
    return fig


def static_missingness(summary: CohortSummary) -> go.Figure:
    miss = summary.static_missing
    if miss is None:
        raise ValueError("cohort has no static part")
    miss = miss.sort_values()
    fig = go.Figure(
        go.Bar(
            x=miss.to_numpy(),
            y=miss.index,
            orientation="h",
            marker_color="#c2563a",
            hovertemplate="%{y}: %{x:.1%} missing<extra></extra>",
        )
    )
    fig.update_layout(
        title="Missing static values",
        xaxis_title="share of records",
        xaxis_tickformat=".0%",
        xaxis_range=[0, 1],
        height=max(260, 22 * len(miss) + 100),
        **_LAYOUT,
    )
    return fig


def split_overview(
    split: CohortSplit, labels: np.ndarray | None, classes: tuple[str, ...]
) -> go.Figure:
    parts = {"train": split.train, "holdout": split.holdout}
    fig = go.Figure()
    if labels is None:
        fig.add_bar(
            x=list(parts), y=[len(v) for v in parts.values()], marker_color=_BLUE, name="records"
        )
    else:
        names = list(classes) or [str(i) for i in range(int(labels.max()) + 1)]
        for i, cls in enumerate(names):
            fig.add_bar(
                x=list(parts), y=[int((labels[v] == i).sum()) for v in parts.values()], name=cls
            )
        if (labels < 0).any():
            fig.add_bar(
                x=list(parts),
                y=[int((labels[v] < 0).sum()) for v in parts.values()],
                name="unknown",
            )
        fig.update_layout(barmode="stack")
    fig.update_layout(
        title=f"Patient-level split (seed {split.seed})", yaxis_title="records", **_LAYOUT
    )
    return fig


def feature_table(summary: CohortSummary) -> pd.DataFrame:
    """The per-feature table, with missingness as a percentage string for display."""
    out = summary.features.copy()
    out["missing"] = (out["missing"] * 100).round(1)
    return out.rename(columns={"missing": "missing %"})
