"""Figures of the Review page and report; one function per plot, MetricResult in, figure out."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.metrics.base import MetricResult
from core.metrics.ids import MetricId

PALETTE = ("#1f6f8b", "#b23a48", "#2c7a4b", "#8a6d1d", "#6b4c9a", "#52606d")
_LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 50, "b": 10}}


def prediction_scatter(result: MetricResult) -> go.Figure:
    pf = result.per_feature
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        line={"color": "#9aa5b1", "dash": "dash"},
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=pf["auroc_real"],
        y=pf["auroc_synthetic"],
        mode="markers",
        text=pf["feature"],
        marker={"color": "#2c7a4b", "size": 6, "opacity": 0.75},
        hovertemplate="%{text}<br>trained on real %{x:.3f}<br>trained on synthetic %{y:.3f}<extra></extra>",
    )
    fig.update_layout(
        title=f"Dimension-wise prediction: R² = {result.value:.3f} ({result.details['features_evaluated']} dimensions)",
        xaxis_title="AUROC, trained on real",
        yaxis_title="AUROC, trained on synthetic",
        xaxis_range=[0.3, 1.0],
        yaxis_range=[0.3, 1.0],
        showlegend=False,
        height=420,
        **_LAYOUT,
    )
    return fig


def membership_roc(result: MetricResult) -> go.Figure:
    d = result.details
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", line={"color": "#9aa5b1", "dash": "dash"}, name="chance"
    )
    fig.add_scatter(
        x=d["roc_fpr"],
        y=d["roc_tpr"],
        mode="lines",
        line={"color": "#b23a48", "width": 2},
        name="attack",
    )
    fig.update_layout(
        title=f"Membership inference ROC: AUROC {d['auroc']:.3f}, accuracy {result.value:.3f}",
        xaxis_title="false positive rate (holdout called member)",
        yaxis_title="true positive rate (member found)",
        showlegend=False,
        height=400,
        **_LAYOUT,
    )
    return fig


def dcr_histogram(result: MetricResult) -> go.Figure:
    d = result.details
    train, holdout = np.asarray(d["dcr_train"]), np.asarray(d["dcr_holdout"])
    hi = float(np.percentile(np.r_[train, holdout], 99)) or 1.0
    bins = {"start": 0, "end": hi, "size": hi / 40}
    fig = go.Figure()
    for values, name, color in (
        (train, "to closest train record", "#b23a48"),
        (holdout, "to closest holdout record", "#1f6f8b"),
    ):
        fig.add_histogram(
            x=values, name=name, xbins=bins, histnorm="probability", marker_color=color, opacity=0.6
        )
    fig.update_layout(
        barmode="overlay",
        title=f"Distance to closest record: {result.value:.1%} closer to train (ideal 50%)",
        xaxis_title="L1 / Hamming distance",
        yaxis_title="share of synthetic records",
        height=400,
        legend={"orientation": "h", "y": -0.25},
        **_LAYOUT,
    )
    return fig


def mmd_bars(results: dict[str, MetricResult]) -> go.Figure:
    names = list(results)
    values = [results[n].value for n in names]
    bw = dict.fromkeys(f"{results[n].details['bandwidth']:.3g}" for n in names)  # bars' order
    cis = [results[n].ci for n in names]
    error = None
    if any(ci is not None for ci in cis):  # the block estimator's 95% interval
        error = dict(
            type="data",
            array=[0 if ci is None else ci[1] - v for ci, v in zip(cis, values, strict=True)],
            arrayminus=[0 if ci is None else v - ci[0] for ci, v in zip(cis, values, strict=True)],
        )
    fig = go.Figure(
        go.Bar(
            x=names,
            y=values,
            marker_color="#1f6f8b",
            text=[f"{v:.2e}" for v in values],
            textposition="outside",
            error_y=error,
        )
    )
    fig.update_layout(
        title=f"MMD² (Gaussian kernel, bandwidth {', '.join(bw)}; 0 is ideal)",
        yaxis_title="MMD²",
        height=380,
        **_LAYOUT,
    )
    return fig


ANONYMETER = {
    MetricId.SINGLING_OUT: "Singling out",
    MetricId.LINKABILITY: "Linkability",
    MetricId.INFERENCE: "Attribute inference",
}


def anonymeter_risks(results: dict[str, dict[str, MetricResult]]) -> go.Figure:
    """Anonymeter's three risks per set (set name -> metric id -> result), with their 95%
    intervals; hover shows the main, control and baseline success rates behind each."""
    fig = go.Figure()
    for k, (set_name, by_id) in enumerate(results.items()):
        rows = [(label, by_id[m]) for m, label in ANONYMETER.items() if m in by_id]
        if not rows:
            continue
        fig.add_scatter(
            x=[r.value for _, r in rows],
            y=[label for label, _ in rows],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [r.ci[1] - r.value for _, r in rows],
                "arrayminus": [r.value - r.ci[0] for _, r in rows],
            },
            mode="markers",
            name=set_name,
            marker={"size": 10, "color": PALETTE[k % len(PALETTE)]},
            offsetgroup=str(k),
            customdata=[
                [r.details["main_rate"], r.details["control_rate"], r.details["baseline_rate"]]
                for _, r in rows
            ],
            hovertemplate="%{y}: risk %{x:.3f}<br>success on training %{customdata[0]:.3f}, "
            "on holdout %{customdata[1]:.3f}, random guess %{customdata[2]:.3f}"
            f"<extra>{set_name}</extra>",
        )
    fig.update_layout(
        title="Anonymeter's risks beyond unseen patients (95% intervals)",
        xaxis_title="risk (0 = no more than for holdout patients)",
        xaxis_range=[-0.02, 1.02],
        scattermode="group",
        height=120 + 60 * len(ANONYMETER),
        legend={"orientation": "h", "y": -0.3},
        **_LAYOUT,
    )
    return fig


def column_fidelity_bars(result: MetricResult, top: int = 20) -> go.Figure:
    """The ``top`` worst columns: KS (numeric) or total variation (categorical) per column; hover
    shows the off-support share and the spike excess."""
    pf = result.per_feature.dropna(subset=["distance"]).head(top).iloc[::-1]
    colors = {"KS": "#1f6f8b", "TV": "#8a6d1d"}
    fig = go.Figure()
    for measure, rows in pf.groupby("measure", sort=False):
        fig.add_bar(
            x=rows["distance"],
            y=rows["feature"],
            orientation="h",
            name=str(measure),
            marker_color=colors.get(str(measure), "#52606d"),
            customdata=np.c_[
                rows["off_support"].fillna(-1), rows["spike_excess"].fillna(0), rows["support"]
            ],
            hovertemplate="%{y}: " + str(measure) + " %{x:.3f}<br>off-support share "
            "%{customdata[0]:.3f} (-1: not applicable)<br>spike excess %{customdata[1]:.3f}"
            "<br>support %{customdata[2]}<extra></extra>",
        )
    fig.add_vline(x=0.10, line={"color": "#b23a48", "dash": "dot"})
    fig.update_layout(
        title=f"Per-column fidelity: worst {len(pf)} of {len(result.per_feature)} columns",
        xaxis_title="KS statistic (numeric) / total variation (categorical); 0 is ideal",
        yaxis={"categoryorder": "array", "categoryarray": list(pf["feature"])},
        height=160 + 22 * len(pf),
        legend={"orientation": "h", "y": -0.15},
        **_LAYOUT,
    )
    return fig


BATTERY = {MetricId.MIA: "Distance", MetricId.DOMIAS: "DOMIAS"}  # metric id -> attack name


def attack_rocs(results: dict[str, MetricResult], title: str = "") -> go.Figure:
    """The battery's ROC curves (attack name -> result) on a log false-positive axis, where
    attacks are judged: a curve on the diagonal is chance; the dots mark the TPR at 0.1%, 1% and
    10% FPR with their Clopper-Pearson intervals."""
    fig = go.Figure()
    floor = min(
        (1.0 / r.details["n_non_members"] for r in results.values()),
        default=1e-3,
    )
    grid = np.geomspace(floor, 1.0, 50)
    fig.add_scatter(
        x=grid, y=grid, mode="lines", line={"color": "#9aa5b1", "dash": "dash"}, name="chance"
    )
    for k, (name, r) in enumerate(results.items()):
        d, color = r.details, PALETTE[(k + 1) % len(PALETTE)]
        fpr, tpr = np.asarray(d["roc_fpr"]), np.asarray(d["roc_tpr"])
        show = fpr > 0
        fig.add_scatter(
            x=fpr[show],
            y=tpr[show],
            mode="lines",
            line={"color": color, "width": 2, "shape": "hv"},
            name=f"{name}: AUROC {d['auroc']:.3f}, ε ≥ {d['epsilon_lower_bound']:.2f}",
            legendgroup=name,
            hovertemplate="FPR %{x:.4f}<br>TPR %{y:.3f}<extra>" + name + "</extra>",
        )
        points = list(d["tpr_at_fpr"].values())
        fig.add_scatter(
            x=[max(p["fpr"], floor) for p in points],
            y=[p["tpr"] for p in points],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [p["tpr_ci"][1] - p["tpr"] for p in points],
                "arrayminus": [p["tpr"] - p["tpr_ci"][0] for p in points],
            },
            mode="markers",
            marker={"color": color, "size": 8},
            legendgroup=name,
            showlegend=False,
            customdata=[[p["fpr_target"], p["true_positives"], p["members"]] for p in points],
            hovertemplate="at %{customdata[0]:.1%} FPR: TPR %{y:.3f} (%{customdata[1]} of "
            "%{customdata[2]} members)<extra>" + name + "</extra>",
        )
    fig.update_layout(
        title=title or "Membership attacks: ROC on a log false-positive axis",
        xaxis={"type": "log", "title": "false positive rate (holdout called member), log scale"},
        yaxis={"title": "true positive rate (member found)", "range": [0, 1.02]},
        height=420,
        legend={"orientation": "h", "y": -0.3},
        **_LAYOUT,
    )
    return fig


def pair_trends_heatmap(result: MetricResult) -> go.Figure:
    """Pair scores among the columns of the worst pairs (issue #33): 1 = the pair moves together
    as in real data; hover shows the measure."""
    heat = result.details["heatmap"]
    cols = heat["columns"]
    z = [[np.nan if v is None else v for v in row] for row in heat["scores"]]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=cols,
            y=cols,
            zmin=min(0.5, float(np.nanmin(z))) if cols else 0.5,
            zmax=1.0,
            colorscale="RdYlGn",
            colorbar={"title": "similarity"},
            hovertemplate="%{y} x %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Column-pair trends: {result.value:.3f} over {result.details['pairs']:,} pairs; "
        f"the columns of the worst pairs",
        xaxis={"tickangle": -45},
        yaxis={"autorange": "reversed"},
        height=200 + 22 * len(cols),
        **_LAYOUT,
    )
    return fig


def detection_features(result: MetricResult) -> go.Figure:
    """The features a detector leans on most (what gives the synthetic set away)."""
    pf = result.per_feature.iloc[::-1]
    colors = np.where(pf["direction"] == "more in synthetic", "#b23a48", "#1f6f8b")
    fig = go.Figure(
        go.Bar(
            x=pf["importance"],
            y=pf["feature"],
            orientation="h",
            marker_color=colors,
            text=pf["direction"],
            hovertemplate="%{y}: %{x:.3g} (%{text})<extra></extra>",
        )
    )
    d = result.details
    lo, hi = result.ci or (float("nan"), float("nan"))
    fig.update_layout(
        title=f"Detection ({d['detector']}): AUROC {result.value:.3f} ({lo:.3f}-{hi:.3f}); "
        f"real vs real {d['real_vs_real_auroc']:.3f}",
        xaxis_title=d["leaning_measure"],
        yaxis={"categoryorder": "array", "categoryarray": list(pf["feature"])},
        height=160 + 22 * len(pf),
        **_LAYOUT,
    )
    return fig


def precision_recall_curves(precision: MetricResult, recall: MetricResult) -> go.Figure:
    """alpha-precision and beta-recall curves against the diagonal, with the curves of real
    holdout records (dotted) as the reference."""
    levels = precision.details["levels"]
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", line={"color": "#9aa5b1", "dash": "dash"}, name="ideal"
    )
    for res, label, color in (
        (precision, "alpha-precision", "#1f6f8b"),
        (recall, "beta-recall", "#b23a48"),
    ):
        fig.add_scatter(
            x=levels,
            y=res.details["curve"],
            mode="lines+markers",
            marker={"size": 4},
            line={"color": color},
            name=f"{label} {res.value:.3f}",
        )
        if "real_vs_real_curve" in res.details:
            fig.add_scatter(
                x=levels,
                y=res.details["real_vs_real_curve"],
                mode="lines",
                line={"color": color, "dash": "dot"},
                name=f"{label}, real holdout {res.details['real_vs_real']:.3f}",
            )
    fig.update_layout(
        title="alpha-precision and beta-recall curves (Alaa et al. 2022)",
        xaxis_title="alpha / beta (share of the support)",
        yaxis_title="share inside",
        height=420,
        legend={"orientation": "h", "y": -0.25},
        **_LAYOUT,
    )
    return fig
