"""The sections of a review in the one order the Review page and the HTML report show them.

:data:`SECTIONS` names each section (id, title) and what renders it into the report; the page
renders the same ids in the same order (``ui/review/sections.py``), so a section is added or
moved here, once. :func:`review_document` is the page's one core call: the reviews, what they
were run on, and each set's release-gate verdict.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import numpy as np
import pandas as pd
import plotly.io as pio

from core import __version__
from core.data.cohort import Cohort, CohortSplit
from core.data.records import EHRTable
from core.data.visits import VisitCohort
from core.generation import SyntheticSet
from core.metrics import specs
from core.metrics.ids import MetricId
from core.metrics.suite import Review, ReviewSettings, best_column, summary_table
from core.release.gate import GROUPS, GateThresholds, GateVerdict, detectable_text, evaluate_gate
from core.report import review_figures as rf
from core.report.review_report import (
    AUDIT_NOTE,
    DETECTION_IDS,
    ReportContext,
    anonymeter_results,
    audit_frame,
    battery_frame,
    battery_note,
    code_counts,
    column_frame,
    detection_text,
    figures_for,
    how_computed,
    make_context,
    validity_text,
)

Codes = dict[str, tuple[np.ndarray | None, np.ndarray | None]]


@dataclass(frozen=True)
class ReviewDocument:
    """What one review run shows: the reviews, what they were run on (``context``), each set's
    release-gate verdict and its codes per record beside the real training split's."""

    reviews: list[Review]
    context: ReportContext
    verdicts: dict[str, GateVerdict] = field(default_factory=dict)
    codes: Codes = field(default_factory=dict)
    audits: dict[str, dict] = field(default_factory=dict)  # per set: its model's offline audits

    @property
    def names(self) -> list[str]:
        return [rv.name for rv in self.reviews]

    @cached_property
    def summary(self) -> pd.DataFrame:
        return summary_table(self.reviews)


def review_document(
    reviews: list[Review],
    cohort: Cohort | VisitCohort,
    split: CohortSplit,
    settings: ReviewSettings,
    sets: Mapping[str, SyntheticSet],
    train: EHRTable,
    thresholds: GateThresholds,
    audits: Mapping[str, dict] | None = None,
) -> ReviewDocument:
    """The document of ``reviews`` of ``sets`` (by name) against ``cohort``'s ``split``, judged
    by the steward's ``thresholds``."""
    return ReviewDocument(
        reviews,
        make_context(
            cohort, split, settings, {rv.name: sets[rv.name].provenance for rv in reviews}
        ),
        {rv.name: evaluate_gate(rv, thresholds) for rv in reviews},
        code_counts(train, {rv.name: sets[rv.name].table for rv in reviews}),
        {rv.name: dict(audits[rv.name]) for rv in reviews if audits and audits.get(rv.name)},
    )


class Figures:
    """Figures as HTML divs; plotly.js is inlined with the first one only."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, fig) -> str:
        out = pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs="inline" if self.first else False,
            config={"displaylogo": False},
        )
        self.first = False
        return f'<div class="fig">{out}</div>'


@dataclass(frozen=True)
class Section:
    """One section: its id (the page keys its renderer by it), its title (its heading, where it
    draws one) and what renders it into the HTML report (None: on the page only; the per-patient
    exposure, for one, is never exported). ``on_page``: False for the report's own sections."""

    id: str
    title: str
    html: Callable[[Section, ReviewDocument, Figures], str] | None
    on_page: bool = True


def _summary_html(section: Section, doc: ReviewDocument, fig: Figures) -> str:
    table, names = doc.summary, doc.names
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
    return (
        f"<h2>{section.title}</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<p class="meta">Highlighted: the value closest to the ideal in each row. Privacy metrics '
        "are measured against the real training (members) and holdout (non-members) patients.</p>"
        + "".join(
            f"<p class='meta'>{html.escape(rv.name)}: {html.escape(how)}</p>"
            for rv in doc.reviews
            if (how := how_computed(rv))
        )
    )


def _overview_html(section: Section, doc: ReviewDocument, fig: Figures) -> str:
    mmd = {rv.name: rv.get(MetricId.MMD) for rv in doc.reviews if rv.get(MetricId.MMD) is not None}
    risks = anonymeter_results(doc.reviews)
    return (fig(rf.mmd_bars(mmd)) if mmd else "") + (
        fig(rf.anonymeter_risks(risks)) if risks else ""
    )


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _attacks_html(section: Section, doc: ReviewDocument, fig: Figures) -> str:
    frame, audits = battery_frame(doc.reviews), audit_frame(doc.audits)
    if frame.empty and audits.empty:
        return ""
    out = f"<h2>{section.title}</h2>"
    if not frame.empty:
        out += _table_html(frame) + f"<p class='meta'>{html.escape(battery_note(doc.reviews))}</p>"
    if not audits.empty:
        out += "<h3>Offline audits</h3>" + _table_html(audits)
        out += f"<p class='meta'>{html.escape(AUDIT_NOTE)}</p>"
    return out


def _figures_html(section: Section, doc: ReviewDocument, fig: Figures) -> str:
    parts = []
    for rv in doc.reviews:
        real_c, syn_c = doc.codes.get(rv.name, (None, None))
        prov = doc.context.sets.get(rv.name, {})
        meta = (
            f"{rv.n_records:,} records"
            + (f" (subsampled from {rv.subsampled_from:,})" if rv.subsampled_from else "")
            + f"; sha256 {rv.fingerprint[:16]}...; "
            + "; ".join(f"{k}: {v}" for k, v in prov.items())
        )
        parts.append(f"<h2>{html.escape(rv.name)}</h2><p class='meta'>{html.escape(meta)}</p>")
        if rv.skipped:
            skipped = "; ".join(f"{specs.title(k)} ({v})" for k, v in rv.skipped.items())
            parts.append(f"<p class='meta'>Not computed: {html.escape(skipped)}</p>")
        figs = "".join(fig(f) for f in figures_for(rv, real_c, syn_c))
        parts.append(f'<div class="grid">{figs}</div>')
    return "".join(parts)


def _per_set(section: Section, doc: ReviewDocument, render: Callable[[Review], str]) -> str:
    """The section's heading, then each set's part under its name (sets with nothing left out)."""
    parts = [(rv.name, render(rv)) for rv in doc.reviews]
    body = "".join(f"<h3>{html.escape(name)}</h3>{part}" for name, part in parts if part)
    return f"<h2>{section.title}</h2>{body}" if body else ""


def _column_table_html(review: Review) -> str:
    result = review.get(MetricId.COLUMN_FIDELITY)
    if result is None:
        return ""
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


def _validity_html(review: Review) -> str:
    result = review.get(MetricId.VALIDITY)
    if result is None:
        return ""
    broken = result.details.get("violations", [])
    items = "".join(f"<li>{html.escape(v)}</li>" for v in broken[:50])
    more = f"<li>... and {len(broken) - 50} more rules</li>" if len(broken) > 50 else ""
    listing = f"<details><summary>Broken rules</summary><ul>{items}{more}</ul></details>"
    return f"<p><b>Validity.</b> {html.escape(validity_text(result))}</p>" + (
        listing if broken else ""
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


def _gate_html(section: Section, doc: ReviewDocument, fig: Figures) -> str:
    verdicts = doc.verdicts
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
        f"<h2>{section.title}</h2><p><b>{verdict_text}</b></p>"
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


def _settings_html(section: Section, doc: ReviewDocument, fig: Figures) -> str:
    shown = json.dumps({"split": doc.context.split, "settings": doc.context.settings}, indent=2)
    return f"<h2>{section.title}</h2><pre>{html.escape(shown)}</pre>"


SECTIONS: tuple[Section, ...] = (
    Section("summary", "Summary", _summary_html),
    Section("overview", "Distances and Anonymeter risks", _overview_html),  # figures, no heading
    Section("attacks", "Membership attacks", _attacks_html),
    Section("figures", "Figures per set", _figures_html),
    Section("columns", "Per-column fidelity", lambda s, d, f: _per_set(s, d, _column_table_html)),
    Section("validity", "Validity", lambda s, d, f: _per_set(s, d, _validity_html)),
    Section("detection", "What gives the set away", lambda s, d, f: _per_set(s, d, _fidelity_html)),
    Section("gate", "Release gate", _gate_html),
    Section("exposure", "Most exposed training patients", None),
    Section("release", "Release", None),
    Section("export", "Export", None),
    Section("settings", "Settings", _settings_html, on_page=False),
)


def section(section_id: str) -> Section:
    return next(s for s in SECTIONS if s.id == section_id)


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


def build_html(doc: ReviewDocument) -> str:
    """A single HTML file: the report's :data:`SECTIONS` in order, plotly.js inlined once,
    every figure interactive, no network needed."""
    fig = Figures()
    body = "\n".join(s.html(s, doc, fig) for s in SECTIONS if s.html is not None)
    name = html.escape(doc.context.cohort_name)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Synthetic data review: {name}</title>
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
<p class="meta">Real cohort: {name} (sha256 {doc.context.cohort_fingerprint[:16]}...).
Generated {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")} by Clinical Synthesis Studio {__version__}.</p>
{body}
{_SORT_JS}
</body></html>"""
