"""Validity: the share of synthetic records that satisfy every rule the real training records
obey (:mod:`core.encoding.constraints`), after SDMetrics' diagnostic "data validity", with the
broken rules listed in words. Visit sequences add their own logic: no negative gap between
visits, a first visit without one, and only codes the training sequences hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from core.data.records import EHRTable
from core.data.visits import VisitCohort
from core.encoding.constraints import LOGIC_KINDS, ConstraintSet, violations
from core.errors import ConfigError
from core.metrics.anonymeter import success_rate
from core.metrics.base import GateEvidence, MetricResult
from core.metrics.ids import MetricId

CONFIDENCE = 0.95


def wilson_interval(n: int, k: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a share of ``k`` in ``n``."""
    centre, half = success_rate(n, k, float(norm.ppf(0.5 * (1.0 + confidence))))
    return max(0.0, centre - half), min(1.0, centre + half)


def sequence_violations(
    synth: VisitCohort, train: VisitCohort
) -> list[tuple[str, str, np.ndarray]]:
    """(label, kind, mask over ``synth``'s patients) for each rule of visit sequences: gaps
    between visits are not negative, a first visit has no gap (0, or unknown), and every
    (modality, code) is one the training sequences hold."""
    first = synth.visit_index() == 0
    gaps = synth.gap_days
    with np.errstate(invalid="ignore"):
        negative = ~first & (gaps < 0)
        first_gap = first & np.isfinite(gaps) & (gaps != 0)
    known = pd.MultiIndex.from_frame(train.events[["modality", "code"]].astype(str))
    pairs = pd.MultiIndex.from_frame(synth.events[["modality", "code"]].astype(str))
    unknown = ~pairs.isin(known.unique())
    unknown_visits = synth.events["visit"].to_numpy()[unknown]

    def per_patient(visit_mask: np.ndarray) -> np.ndarray:
        out = np.zeros(synth.n_patients, bool)
        out[synth.visit_patient[visit_mask]] = True
        return out

    return [
        ("Visits: negative gap between visits", "gap", per_patient(negative)),
        ("Visits: first visit with a gap", "gap", per_patient(first_gap)),
        (
            "Visits: a code the training sequences never hold",
            "vocabulary",
            per_patient(unknown_visits),
        ),
    ]


def validity(
    synth: EHRTable,
    constraints: ConstraintSet,
    sequences: tuple[VisitCohort, VisitCohort] | None = None,
) -> MetricResult:
    """Share of ``synth``'s records that break none of ``constraints`` (1 is ideal), with a
    Wilson 95% interval for the generator's rate. ``sequences`` (the synthetic and the training
    visit sequences behind patient-level records) adds the rules of visit sequences.
    ``per_feature`` lists each broken rule with the records that break it, most first;
    ``details["violations"]`` reads "Albumin: min above max in 12 records". The gate's evidence
    is the share of records breaking a rule no real record can break (``LOGIC_KINDS``, the
    sequence rules), not a training range or co-charting pattern."""
    n = synth.n_records
    if n == 0:
        raise ConfigError("validity needs at least one synthetic record")
    broken = [(k.label, k.kind, mask) for k, mask in violations(synth, constraints)]
    if sequences is not None:
        visits, train = sequences
        rows_of = pd.Index(np.asarray(visits.patient_ids, dtype=str)).get_indexer(
            np.asarray(synth.record_ids, dtype=str)
        )
        if (rows_of < 0).any():
            raise ConfigError("the synthetic records are not the patients of its visit sequences")
        broken += [(a, b, m[rows_of]) for a, b, m in sequence_violations(visits, train)]
    bad = np.zeros(n, bool)
    impossible = np.zeros(n, bool)  # broke a rule of LOGIC_KINDS or of visit sequences
    rows = []
    for label, kind, mask in broken:
        bad |= mask
        if kind in LOGIC_KINDS or kind in ("gap", "vocabulary"):
            impossible |= mask
        count = int(mask.sum())
        if count:
            rows.append({"constraint": label, "kind": kind, "records": count})
    invalid = int(bad.sum())
    table = pd.DataFrame(rows, columns=["constraint", "kind", "records"])
    table = table.sort_values("records", ascending=False, kind="stable").reset_index(drop=True)
    table["share"] = table["records"] / n
    return MetricResult(
        id=MetricId.VALIDITY,
        name="Validity (records obeying the cohort's logic)",
        category="fidelity",
        value=(n - invalid) / n,
        higher_is_better=True,
        ideal=1.0,
        lower_bound=0.0,
        upper_bound=1.0,
        ci=wilson_interval(n, n - invalid),
        per_feature=table,
        # the gate judges impossible records only: every released record counted, no interval
        evidence=GateEvidence(float(impossible.mean())),
        details={
            "n_records": n,
            "invalid_records": invalid,
            "impossible_records": int(impossible.sum()),
            "n_constraints": len(constraints),
            "constraints_source": constraints.source,
            "violations": [
                f"{r.constraint} in {r.records:,} record{'s' if r.records != 1 else ''}"
                for r in table.itertuples()
            ],
        },
    )
