"""Figures of the CXR Forecast page: image panels and the EHR window."""

from __future__ import annotations

import io
import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image, ImageDraw
from plotly.subplots import make_subplots

_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 10}}
SYNTHETIC_LABEL = "SYNTHETIC - not for diagnosis"


def forecast_panels(
    prior: np.ndarray,
    mean: np.ndarray,
    uncertainty: np.ndarray,
    change: np.ndarray,
    title: str,
    truth: np.ndarray | None = None,
) -> go.Figure:
    """Prior | forecast mean | per-pixel SD across samples | change (mean - prior) [| truth]."""
    titles = [
        "Prior X-ray (input)",
        "Forecast mean (synthetic)",
        "Uncertainty (SD)",
        "Change (mean - prior)",
    ]
    gray = [[0, "black"], [1, "white"]]
    lim = float(max(np.abs(change).max(), 1e-3))
    panels = [
        (prior, gray, 0.0, 1.0, "intensity", False),
        (mean, gray, 0.0, 1.0, "intensity", False),
        (uncertainty, "Viridis", 0.0, float(max(uncertainty.max(), 1e-3)), "SD", True),
        (change, "RdBu_r", -lim, lim, "change", True),
    ]
    if truth is not None:
        titles.append("True later X-ray")
        panels.append((truth, gray, 0.0, 1.0, "intensity", False))
    n = len(panels)
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=0.03, subplot_titles=titles)
    for col, (img, scale, lo, hi, name, bar) in enumerate(panels, start=1):
        x0, x1 = fig.layout[f"xaxis{col if col > 1 else ''}"].domain
        fig.add_heatmap(
            z=img[::-1],  # heatmap rows grow upwards; images grow downwards
            colorscale=scale,
            zmin=lo,
            zmax=hi,
            showscale=bar,
            # a horizontal bar under its own panel, as wide as it: never over the next image
            colorbar={
                "orientation": "h",
                "x": (x0 + x1) / 2,
                "xanchor": "center",
                "len": (x1 - x0) * 0.9,
                "y": -0.02,
                "yanchor": "top",
                "thickness": 10,
            },
            hovertemplate=f"{name} %{{z:.3f}}<extra></extra>",
            row=1,
            col=col,
        )
        fig.update_xaxes(visible=False, row=1, col=col)
        fig.update_yaxes(visible=False, scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col)
    layout = {**_LAYOUT, "margin": {**_LAYOUT["margin"], "b": 50}}  # room for the bars
    fig.update_layout(**layout, title=title, height=400 if n == 4 else 360)
    return fig


def single_image(img: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(
            z=img[::-1],
            colorscale=[[0, "black"], [1, "white"]],
            zmin=0,
            zmax=1,
            showscale=False,
            hovertemplate="intensity %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(**_LAYOUT, title=title, height=340, width=340)
    return fig


def ehr_window_figure(window: pd.DataFrame, horizon_hours: float) -> go.Figure:
    """One panel per variable: observations over hours since the prior image, horizon marked."""
    variables = list(dict.fromkeys(window["variable"]))
    fig = make_subplots(
        rows=max(1, len(variables)),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=variables or ["no observations"],
    )
    for i, var in enumerate(variables, start=1):
        part = window[window["variable"] == var]
        fig.add_scatter(
            x=part["hours"],
            y=part["value"],
            mode="lines+markers",
            line={"color": "#1f6f8b", "width": 1},
            marker={"size": 7, "color": "#c0392b"},
            name=var,
            showlegend=False,
            hovertemplate="%{x:g} h: %{y:.3g}<extra></extra>",
            row=i,
            col=1,
        )
    for i in range(1, max(1, len(variables)) + 1):
        fig.add_vline(x=horizon_hours, line_dash="dash", line_color="#7f8c8d", row=i, col=1)
    fig.update_xaxes(
        title_text="hours since the prior X-ray (dashed: forecast time)",
        row=max(1, len(variables)),
        col=1,
    )
    fig.update_layout(**_LAYOUT, title="EHR window", height=max(240, 130 * len(variables)))
    return fig


def labelled_png(
    pixels: np.ndarray,
    size: int = 256,
    label: str = SYNTHETIC_LABEL,
    footer: str | None = None,
) -> bytes:
    """An upscaled 8-bit PNG with the synthetic label in a strip above the image and an optional
    footer (e.g. the source images' attribution) in a strip below it: burnt into the file, never
    over the image (issue 31: a footer over the image hid the lung bases); no metadata."""
    arr = (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(arr, mode="L").resize((size, size), Image.Resampling.BICUBIC)
    lines = textwrap.wrap(footer, width=max(20, size // 6)) if footer else []
    header, below = 16, (11 * len(lines) + 4 if lines else 0)
    canvas = Image.new("L", (size, header + size + below), color=0)
    canvas.paste(img, (0, header))
    draw = ImageDraw.Draw(canvas)
    draw.text((3, 2), label, fill=255)
    for i, line in enumerate(lines):
        draw.text((3, header + size + 2 + 11 * i), line, fill=255)
    img = canvas
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def heat_png(
    values: np.ndarray,
    lo: float,
    hi: float,
    size: int = 256,
    label: str = SYNTHETIC_LABEL,
    footer: str | None = None,
) -> bytes:
    """A map (uncertainty, change) as a labelled grayscale PNG scaled from ``lo`` to ``hi``."""
    return labelled_png((values - lo) / max(hi - lo, 1e-6), size, label, footer)
