"""The exportable review: one self-contained HTML file, plus the metric table as JSON / CSV."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import plotly.io as pio

from core import __version__
from core.data.cohort import Cohort, CohortSplit
from core.data.records import EHRTable
from core.metrics import specs
from core.metrics.base import MetricResult
from core.metrics.ids import MetricId, detection_id
from core.metrics.suite import Review, ReviewSettings, best_column, settings_dict, summary_table
from core.release.gate import GROUPS, GateVerdict, detectable_text
from core.report import review_figures as rf
from core.report.generation_figures import codes_per_record_overlay, prevalence_scatter


@dataclass(frozen=True)
class ReportContext:
    cohort_name: str
    cohort_fingerprint: str
    split: dict
    settings: dict
    sets: dict[str, dict] = field(
        default_factory=dict
    )  # name -> provenance (model, sha256, sampler, seed)


def make_context(
    cohort: Cohort, split: CohortSplit, settings: ReviewSettings, sets: dict[str, dict]
) -> ReportContext:
    """Everything the report states about the real data, the split and the settings."""
    return ReportContext(
        cohort_name=cohort.name,
        cohort_fingerprint=cohort.fingerprint(),
        split=split.summary(),
        settings=settings_dict(settings),
        sets=sets,
    )


def code_counts(
    train: EHRTable, synthetic: dict[str, EHRTable]
) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """Codes per record of the real training split and of each synthetic set (None without codes)."""
    real = train.codes.codes_per_record() if train.codes is not None else None
    return {
        n: (real, t.codes.codes_per_record() if t.codes is not None else None)
        for n, t in synthetic.items()
    }


def gate_json(verdict: GateVerdict) -> dict:
    return {
        "verdict": verdict.status,
        "groups": {g: verdict.group_status(g) for g in GROUPS},
        "checks": [asdict(c) for c in verdict.checks],
        "thresholds": asdict(verdict.thresholds),
        "not_applicable": list(verdict.not_applicable),
        "detectable_leak": verdict.detectable,
    }


def _gate_html(verdicts: dict[str, GateVerdict]) -> str:
    if not verdicts:
        return ""
    rows = []
    for name, v in verdicts.items():
        for c in v.checks:
            value = "not computed" if c.value is None else f"{c.value:.4g}"
            bounds = "" if c.ci is None else f"{c.ci[0]:.3g} / {c.ci[1]:.3g}"
            mark = "not computed" if c.value is None else c.verdict.upper()
            limit = f"{'&ge;' if c.at_least else '&le;'} {c.threshold:.3g}"
            rows.append(
                f"<tr><td>{html.escape(name)}</td><td>{html.escape(c.group)}</td>"
                f"<td>{html.escape(c.name)}</td><td>{value}</td><td>{bounds}</td><td>{limit}</td>"
                f'<td class="{"best" if c.passed else "fail"}">{mark}</td></tr>'
            )
    verdict_text = "; ".join(
        f"{html.escape(n)}: {v.status.upper()} ("
        + ", ".join(f"{g} {v.group_status(g)}" for g in GROUPS if v.group_status(g))
        + ")"
        for n, v in verdicts.items()
    )
    first = next(iter(verdicts.values()))
    return (
        f"<h2>Release gate</h2><p><b>{verdict_text}</b></p>"
        f"<p>{html.escape(detectable_text(first.detectable))}</p><table><thead><tr><th>Set</th>"
        "<th>Group</th><th>Check</th><th>Estimate</th><th>Bounds (lower / upper)</th>"
        "<th>Threshold</th><th>Result</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "<p class='meta'>A set is releasable only when it is private enough (privacy checks) and "
        "useful enough (fidelity floors). A leak passes when its upper bound (one-sided 95%) is at "
        "or below the steward's threshold and fails when its lower bound (one-sided 98.75%) is "
        "above it; a floor passes when its lower bound reaches it and fails when its upper bound "
        "misses it; in between, inconclusive. A set with a leak at its threshold passes in at "
        "most 5% of splits (every check must pass: an intersection-union test).</p>"
    )


def to_json(
    reviews: list[Review],
    context: ReportContext,
    verdicts: dict[str, GateVerdict] | None = None,
) -> str:
    payload = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "app_version": __version__,
        "cohort": {
            "name": context.cohort_name,
            "fingerprint": context.cohort_fingerprint,
            "split": context.split,
        },
        "settings": context.settings,
        "sets": {
            rv.name: {
                "provenance": context.sets.get(rv.name, {}),
                "fingerprint": rv.fingerprint,
                "records": rv.n_records,
                "subsampled_from": rv.subsampled_from,
                "skipped": rv.skipped,
                "release_gate": gate_json(verdicts[rv.name])
                if verdicts and rv.name in verdicts
                else None,
                "metrics": [
                    {
                        "id": r.id,
                        "name": r.name,
                        "category": r.category,
                        "value": r.value,
                        "ideal": r.ideal,
                        "higher_is_better": r.higher_is_better,
                        "ci": r.ci,
                        "version": r.version,
                        # scalars only: per-record arrays stay out of the export
                        "details": {
                            k: v
                            for k, v in r.details.items()
                            if not isinstance(v, list | np.ndarray | pd.DataFrame | pd.Series)
                        },
                    }
                    for r in rv.results
                ],
            }
            for rv in reviews
        },
    }
    return json.dumps(
        payload, indent=2, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)
    )


def _table_html(reviews: list[Review]) -> str:
    table = summary_table(reviews)
    names = [rv.name for rv in reviews]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["Metric", "Category", "Ideal", *names])
    rows = []
    for _, row in table.iterrows():
        best = best_column(row, names)
        cells = [
            f"<td>{html.escape(row['metric'])}</td>",
            f"<td>{row['category']}</td>",
            f"<td>{row['ideal']:.3g}</td>",
        ]
        for n in names:
            v = row.get(n)
            text = "n/a" if v is None or pd.isna(v) else f"{v:.4g}"
            cls = ' class="best"' if n == best and len(names) > 1 else ""
            cells.append(f"<td{cls}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


COLUMN_TABLE = {
    "feature": "Column",
    "kind": "Kind",
    "measure": "Measure",
    "distance": "Distance",
    "wasserstein_iqr": "Wasserstein / IQR",
    "off_support": "Off-support share",
    "spike_excess": "Spike excess",
    "support": "Real support",
}


def column_frame(result: MetricResult) -> pd.DataFrame:
    """The per-column table as the page and the report show it, worst column first."""
    return result.per_feature[list(COLUMN_TABLE)].rename(columns=COLUMN_TABLE)


def validity_text(result: MetricResult) -> str:
    """One sentence: "99.6% of 3,200 records (95% CI 99.3% to 99.8%) obey all 375 rules ..."."""
    d = result.details
    lo, hi = result.ci or (float("nan"), float("nan"))
    return (
        f"{result.value:.1%} of {d['n_records']:,} records (95% CI {lo:.1%} to {hi:.1%}) obey "
        f"all {d['n_constraints']:,} rules of the real cohort ({d['constraints_source']}); "
        f"{d['invalid_records']:,} break at least one."
    )


def _validity_html(result: MetricResult | None) -> str:
    if result is None:
        return ""
    broken = result.details.get("violations", [])
    items = "".join(f"<li>{html.escape(v)}</li>" for v in broken[:50])
    more = f"<li>... and {len(broken) - 50} more rules</li>" if len(broken) > 50 else ""
    listing = f"<details><summary>Broken rules</summary><ul>{items}{more}</ul></details>"
    return f"<p><b>Validity.</b> {html.escape(validity_text(result))}</p>" + (
        listing if broken else ""
    )


def _column_table_html(result: MetricResult) -> str:
    frame = column_frame(result)
    head = "".join(f"<th onclick='sortTable(this)'>{html.escape(h)}</th>" for h in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for v in row:
            if isinstance(v, float):
                text = "" if np.isnan(v) else f"{v:.3f}"
                cells.append(f"<td data-v='{'' if np.isnan(v) else v}'>{text}</td>")
            else:
                cells.append(f"<td>{html.escape(str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<details><summary>Per-column table (worst first; click a header to sort)</summary>"
        f"<table class='sortable'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></details>"
    )


_SORT_JS = """<script>
function sortTable(th) {
  const table = th.closest('table'), body = table.tBodies[0];
  const i = Array.from(th.parentNode.children).indexOf(th);
  const down = th.dataset.dir !== 'down';
  th.dataset.dir = down ? 'down' : 'up';
  const key = r => { const c = r.children[i]; const v = c.dataset.v;
    return v === undefined ? c.textContent : (v === '' ? -Infinity : parseFloat(v)); };
  Array.from(body.rows).sort((a, b) => { const x = key(a), y = key(b);
    return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1); }).forEach(r => body.appendChild(r));
}
</script>"""


def anonymeter_results(reviews: list[Review]) -> dict[str, dict[str, MetricResult]]:
    """Set name -> Anonymeter's results by id, for the sets that have them."""
    out = {
        rv.name: {m: rv.get(m) for m in rf.ANONYMETER if rv.get(m) is not None} for rv in reviews
    }
    return {name: by_id for name, by_id in out.items() if by_id}


def battery_results(review: Review) -> dict[str, MetricResult]:
    """Attack name -> result, for the battery's attacks the review computed."""
    found = {name: review.get(metric_id) for metric_id, name in rf.BATTERY.items()}
    return {name: r for name, r in found.items() if r is not None}


def _interval(value: float, ci) -> str:
    return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"


def battery_frame(reviews: list[Review]) -> pd.DataFrame:
    """One row per set and attack: AUROC, TPR at 0.1 / 1 / 10% FPR (95% intervals: DeLong for
    the AUROC, Clopper-Pearson for the TPRs) and the 95% epsilon lower bound."""
    rows = []
    for rv in reviews:
        for name, r in battery_results(rv).items():
            d = r.details
            row = {
                "set": rv.name,
                "attack": name,
                "members / non-members": f"{d['n_members']:,} / {d['n_non_members']:,}",
                "AUROC (95% CI)": _interval(d["auroc"], d["auroc_ci"]),
            }
            for key, p in d["tpr_at_fpr"].items():
                row[f"TPR at {float(key):.1%} FPR"] = _interval(p["tpr"], p["tpr_ci"])
            at = d["epsilon_at_fpr"]
            row["ε lower bound (95%)"] = f"{d['epsilon_lower_bound']:.2f}" + (
                f" (at {at:.1%} FPR)" if at is not None else ""
            )
            rows.append(row)
    return pd.DataFrame(rows)


def _battery_html(reviews: list[Review]) -> str:
    frame = battery_frame(reviews)
    if frame.empty:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return (
        "<h2>Membership attacks</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<p class='meta'>{html.escape(battery_note(reviews))}</p>"
    )


def battery_note(reviews: list[Review]) -> str:
    """How to read the attack table, with the delta its epsilon bounds are stated at."""
    deltas = {r.details["epsilon_delta"] for rv in reviews for r in battery_results(rv).values()}
    return _BATTERY_NOTE.format(delta=", ".join(f"{d:g}" for d in sorted(deltas)) or "1e-05")


_BATTERY_NOTE = (
    "Each attack scores every real patient; TPR at x% FPR is the share of training patients it "
    "finds while calling x% of holdout patients members (0.5 AUROC and TPR = FPR are chance). "
    "Intervals 95%: DeLong for the AUROC, exact Clopper-Pearson for the rates. The epsilon lower "
    "bound is what the best operating point proves about any differential-privacy guarantee at "
    "delta {delta}, with 95% confidence (0 = nothing proven)."
)


def figures_for(
    review: Review, real_codes: np.ndarray | None = None, synth_codes: np.ndarray | None = None
) -> list:
    figs = []
    for metric_id, fn in (
        (MetricId.DIMWISE_PROBABILITY, lambda r: prevalence_scatter(r, "real training split")),
        (MetricId.DIMWISE_PREDICTION, rf.prediction_scatter),
        (MetricId.COLUMN_FIDELITY, rf.column_fidelity_bars),
        (MetricId.MIA, rf.membership_roc),
        (MetricId.DCR, rf.dcr_histogram),
    ):
        res = review.get(metric_id)
        if res is not None:
            figs.append(fn(res))
    battery = battery_results(review)
    if battery:
        figs.append(rf.attack_rocs(battery))
    if synth_codes is not None:
        figs.append(codes_per_record_overlay(real_codes, synth_codes))
    figs.extend(fidelity_figures(review))
    return figs


DETECTION_IDS = (detection_id("logistic_regression"), detection_id("gradient_boosting"))


def fidelity_figures(review: Review) -> list:
    """Issue #33's plots: what the detectors lean on, the precision / recall curves and the
    worst column pairs (those the review computed)."""
    figs = [rf.detection_features(r) for r in map(review.get, DETECTION_IDS) if r is not None]
    precision, recall = review.get(MetricId.ALPHA_PRECISION), review.get(MetricId.BETA_RECALL)
    if precision is not None and recall is not None:
        figs.append(rf.precision_recall_curves(precision, recall))
    pairs = review.get(MetricId.PAIR_TRENDS)
    if pairs is not None and pairs.details["heatmap"]["columns"]:
        figs.append(rf.pair_trends_heatmap(pairs))
    return figs


def detection_text(result: MetricResult) -> str:
    """One sentence: "Gradient boosting tells synthetic from real training records with AUROC
    0.99 (95% CI ...); real holdout vs training: 0.51. It leans most on ..."."""
    d = result.details
    lo, hi = result.ci or (float("nan"), float("nan"))
    return (
        f"{d['detector'].capitalize()} tells synthetic from real training records with AUROC "
        f"{result.value:.3f} (95% CI {lo:.3f} to {hi:.3f}; 0.5 = cannot tell); real holdout vs "
        f"training records: {d['real_vs_real_auroc']:.3f}. It leans most on {d['leans_on']}."
    )


def _fidelity_html(review: Review) -> str:
    lines = [detection_text(r) for r in map(review.get, DETECTION_IDS) if r is not None]
    pairs = review.get(MetricId.PAIR_TRENDS)
    if pairs is not None:
        lines.append(
            f"Column-pair trends {pairs.value:.3f} over {pairs.details['pairs']:,} pairs; worst: "
            f"{pairs.details['worst_pairs']}."
        )
    if not lines:
        return ""
    return "<p><b>What gives the set away.</b> " + " ".join(html.escape(t) for t in lines) + "</p>"


def build_html(
    reviews: list[Review],
    context: ReportContext,
    codes: dict[str, tuple[np.ndarray | None, np.ndarray | None]] | None = None,
    verdicts: dict[str, GateVerdict] | None = None,
) -> str:
    """A single HTML file: plotly.js inlined once, every figure interactive, no network needed."""
    codes = codes or {}
    parts = []
    first = True

    def fig_html(fig) -> str:
        nonlocal first
        out = pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs="inline" if first else False,
            config={"displaylogo": False},
        )
        first = False
        return f'<div class="fig">{out}</div>'

    mmd = {rv.name: rv.get(MetricId.MMD) for rv in reviews if rv.get(MetricId.MMD) is not None}
    if mmd:
        parts.append(fig_html(rf.mmd_bars(mmd)))
    risks = anonymeter_results(reviews)
    if risks:
        parts.append(fig_html(rf.anonymeter_risks(risks)))
    for rv in reviews:
        real_c, syn_c = codes.get(rv.name, (None, None))
        prov = context.sets.get(rv.name, {})
        parts.append(f"<h2>{html.escape(rv.name)}</h2>")
        parts.append(
            "<p class='meta'>"
            + html.escape(
                f"{rv.n_records:,} records"
                + (f" (subsampled from {rv.subsampled_from:,})" if rv.subsampled_from else "")
                + f"; sha256 {rv.fingerprint[:16]}...; "
                + "; ".join(f"{k}: {v}" for k, v in prov.items())
            )
            + "</p>"
        )
        if rv.skipped:
            parts.append(
                "<p class='meta'>Not computed: "
                + html.escape("; ".join(f"{specs.title(k)} ({v})" for k, v in rv.skipped.items()))
                + "</p>"
            )
        parts.append(
            '<div class="grid">'
            + "".join(fig_html(f) for f in figures_for(rv, real_c, syn_c))
            + "</div>"
        )
        parts.append(_validity_html(rv.get(MetricId.VALIDITY)))
        parts.append(_fidelity_html(rv))
        columns = rv.get(MetricId.COLUMN_FIDELITY)
        if columns is not None:
            parts.append(_column_table_html(columns))
    settings = html.escape(
        json.dumps({"split": context.split, "settings": context.settings}, indent=2)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Synthetic data review: {html.escape(context.cohort_name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1300px; color: #1b2733; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.92rem; }}
th, td {{ border-bottom: 1px solid #dde3e8; padding: 6px 8px; text-align: left; }}
td.best {{ background: #dff2e6; font-weight: 600; }}
td.fail {{ background: #fbe3e1; font-weight: 600; }}
.grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }}
.meta {{ color: #52606d; font-size: 0.9rem; }}
table.sortable th {{ cursor: pointer; }}
details {{ margin: 0.5rem 0 1.5rem; }}
.warn {{ background: #fff4e0; padding: 0.6rem 1rem; border-radius: 6px; }}
</style></head><body>
<h1>Synthetic data review</h1>
<p class="warn">Synthetic records are generated, not real patients. Metrics describe risk and fidelity measured on
this cohort; they are not a guarantee of privacy.</p>
<p class="meta">Real cohort: {html.escape(context.cohort_name)} (sha256 {context.cohort_fingerprint[:16]}...).
Generated {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} by Clinical Synthesis Studio {__version__}.</p>
<h2>Summary</h2>
{_table_html(reviews)}
<p class="meta">Highlighted: the value closest to the ideal in each row. Privacy metrics are measured against the
real training (members) and holdout (non-members) patients.</p>
{_gate_html(verdicts or {})}
{_battery_html(reviews)}
{"".join(parts)}
<h2>Settings</h2><pre>{settings}</pre>
{_SORT_JS}
</body></html>"""
