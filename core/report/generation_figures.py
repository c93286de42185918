"""Figures of the Generate page (and reused by the review)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.metrics.base import MetricResult

_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 50, "b": 10}}


def prevalence_scatter(result: MetricResult, reference: str = "training data") -> go.Figure:
    """Dimension-wise probability: real (x) vs synthetic (y), with the diagonal and R^2."""
    pf = result.per_feature
    hi = float(max(pf["real"].max(), pf["synthetic"].max(), 1e-6)) * 1.05
    fig = go.Figure()
    fig.add_scatter(
        x=[0, hi],
        y=[0, hi],
        mode="lines",
        line={"color": "#9aa5b1", "dash": "dash"},
        name="y = x",
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=pf["real"],
        y=pf["synthetic"],
        mode="markers",
        text=pf["feature"],
        name="dimension",
        marker={"color": "#1f6f8b", "size": 6, "opacity": 0.75},
        hovertemplate="%{text}<br>real %{x:.3f}<br>synthetic %{y:.3f}<extra></extra>",
    )
    fig.update_layout(
        title=f"Dimension-wise probability: R² = {result.value:.3f} (Pearson r = {result.details['pearson_r']:.3f})",
        xaxis_title=f"real ({reference})",
        yaxis_title="synthetic",
        xaxis_range=[0, hi],
        yaxis_range=[0, hi],
        showlegend=False,
        height=460,
        **_LAYOUT,
    )
    return fig


def codes_per_record_overlay(real: np.ndarray | None, synthetic: np.ndarray) -> go.Figure:
    """Share of records per count of distinct codes. Binned here, so the figure (and the HTML
    report that embeds it) holds shares, never one value per real record."""
    fig = go.Figure()
    top = int(max(synthetic.max(initial=0), 0 if real is None else real.max(initial=0))) + 1
    counts = np.arange(top)
    for values, name, color in ((real, "real", "#9aa5b1"), (synthetic, "synthetic", "#1f6f8b")):
        if values is None or len(values) == 0:
            continue
        share = np.bincount(np.asarray(values, dtype=np.int64), minlength=top)[:top] / len(values)
        fig.add_bar(x=counts, y=share, name=name, width=1.0, marker_color=color, opacity=0.7)
    fig.update_layout(
        barmode="overlay",
        title="Unique codes per record",
        xaxis_title="distinct codes",
        yaxis_title="share of records",
        height=380,
        **_LAYOUT,
    )
    return fig


def loss_curve(
    losses: np.ndarray, steps: np.ndarray | None = None, window: int = 50, max_points: int = 2000
) -> go.Figure:
    """Loss against the optimiser step it was reported at (``steps``; 1, 2, ... when absent).
    Long runs are thinned to about ``max_points`` points for the browser, the x axis still in
    real steps; the running mean is taken over ``window`` reports before thinning."""
    losses = np.asarray(losses, dtype=np.float64)
    steps = np.arange(1, len(losses) + 1) if steps is None else np.asarray(steps)
    if len(steps) != len(losses):
        raise ValueError(f"{len(losses)} losses but {len(steps)} steps")
    every = max(1, -(-len(losses) // max_points))  # ceiling division
    fig = go.Figure()
    fig.add_scatter(
        x=steps[::every],
        y=losses[::every],
        mode="lines",
        line={"color": "#c8d3dc", "width": 1},
        name="loss",
    )
    if len(losses) >= window:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        fig.add_scatter(
            x=steps[window - 1 :][::every],
            y=smooth[::every],
            mode="lines",
            line={"color": "#1f6f8b", "width": 2},
            name=f"mean of {window}",
        )
    fig.update_layout(
        title="Training loss",
        xaxis_title="training step",
        yaxis_title="loss",
        height=320,
        **_LAYOUT,
    )
    return fig


def patient_series(
    temporal_values: np.ndarray,
    temporal_mask: np.ndarray,
    variables: tuple[str, ...],
    units: tuple[str | None, ...],
    step_hours: float,
    title: str,
) -> go.Figure:
    """One patient's series, one panel per variable: observed values as points joined by lines
    (the line only connects observations; unobserved hours are gaps in the data, not zeros)."""
    fig = make_subplots(
        rows=len(variables),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        subplot_titles=[f"{v} ({u})" if u else v for v, u in zip(variables, units, strict=True)],
    )
    hours = np.arange(temporal_values.shape[0]) * step_hours
    for j in range(len(variables)):
        seen = temporal_mask[:, j]
        fig.add_scatter(
            x=hours[seen],
            y=temporal_values[seen, j],
            mode="lines+markers",
            line={"color": "#1f6f8b", "width": 1},
            marker={"size": 6, "color": "#c0392b"},
            name=variables[j],
            showlegend=False,
            hovertemplate="%{x:g} h: %{y:.3g}<extra></extra>",
            row=j + 1,
            col=1,
        )
        if not seen.any():
            fig.add_annotation(
                text="not observed", showarrow=False, xref="x domain", yref="y domain",
                x=0.5, y=0.5, row=j + 1, col=1,
            )  # fmt: skip
    fig.update_xaxes(title_text="hours since admission", row=len(variables), col=1)
    fig.update_layout(**_LAYOUT, title=title, height=max(220, 140 * len(variables)))
    return fig
