"""Review-page helpers: metric explanations and cached suite runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict

import pandas as pd
import streamlit as st

from core.data.encoding import VectorEncoding
from core.data.records import EHRTable
from core.metrics.gate import CHECKS, GateThresholds, GateVerdict, release_manifest
from core.metrics.suite import Review, ReviewSettings, review

EXPLANATIONS = {
    "Dimension-wise probability": "Share of records with each feature (or mean scaled value) in real vs synthetic data. "
    "R² against the diagonal: 1 means every prevalence matches. Pearson r (also shown) ignores offsets; R² does not.",
    "Dimension-wise prediction": "Each 0/1 feature is predicted from all others by a linear model trained on real or on "
    "synthetic data and scored on real holdout patients. R² of the two AUROCs: 1 means the synthetic data keeps the "
    "relations between features.",
    "MMD": "Maximum mean discrepancy with a Gaussian kernel (median-heuristic bandwidth) over whole records, computed "
    "exactly over all pairs. 0 means the two distributions cannot be told apart by this kernel.",
    "Correlation matrix": "Mean absolute difference between feature-feature correlations in real and synthetic data. 0 is ideal.",
    "Numeric marginals": "Kolmogorov-Smirnov statistic per numeric column (0 = same distribution, 1 = disjoint); "
    "Wasserstein distances per column are in the breakdown.",
    "Missingness agreement": "How often each column is missing, real vs synthetic. 0 means identical missingness.",
    "Codes per record": "Distance between the distributions of distinct codes per record. 0 is ideal.",
    "TSTR": "A classifier trained on synthetic data and tested on real holdout patients (TSTR), against the same "
    "classifier trained on real training data (TRTR, the ideal shown). Close to TRTR = useful synthetic data.",
    "Membership inference": "An attacker calls a real patient a training member when a synthetic record lies very close. "
    "Accuracy 0.5 (and advantage 0) means the attacker does no better than a coin flip.",
    "DCR": "For each synthetic record, is its closest real record a training patient or a holdout patient? "
    "50% closer to train is ideal; near 100% means records were memorised.",
    "Exact copies": "Share of synthetic records identical to a training record. Compare with the holdout baseline: "
    "identical code sets also occur naturally between different real patients.",
    "Nearest-neighbour distance ratio": "Closest / second-closest training distance. Close to the holdout's value "
    "(the ideal shown) is good; near 0 means records sit on top of one patient.",
    "Attribute inference": "An attacker who knows half of a patient's features guesses the rest from the nearest "
    "synthetic records. The gap between training and holdout patients is the leak; 0 is ideal.",
}


def explanation(metric_name: str) -> str:
    return next(
        (
            text
            for key, text in EXPLANATIONS.items()
            if metric_name.startswith(key) or key in metric_name
        ),
        "",
    )


@st.cache_resource(show_spinner=False, max_entries=64)
def _cached_review(key: tuple, _args: tuple) -> Review:
    name, train, holdout, synth, encoding, settings, callback = _args
    return review(
        name, train, holdout, synth, encoding=encoding, settings=settings, callback=callback
    )


def run_review(
    name: str,
    train: EHRTable,
    holdout: EHRTable,
    synth: EHRTable,
    encoding: VectorEncoding,
    settings: ReviewSettings,
    key: tuple,
    callback=None,
) -> Review:
    """Cached per (cohort, split, synthetic set, settings) fingerprint in ``key``."""
    return _cached_review(key, (name, train, holdout, synth, encoding, settings, callback))


GATE_HELP = {
    "mia_advantage": "Largest TPR - FPR of the distance attacker over a coin flip (0 = none).",
    "exact_copies": "Share of synthetic records identical to a training record.",
    "dcr_share": "Share of synthetic records whose closest real record is a training patient; 0.5 = never saw them.",
    "attribute_gap": "How much better an attacker guesses training patients' hidden features than others'.",
}


def gate_thresholds() -> GateThresholds:
    """Steward-set thresholds (defaults and rationale: core/metrics/gate.py)."""
    defaults = asdict(GateThresholds())
    with st.expander("Thresholds (set by the data steward)"):
        cols = st.columns(len(defaults))
        values = {
            name: col.number_input(
                CHECKS[name][2],
                0.0,
                1.0,
                float(default),
                0.01,
                format="%.3f",
                key=f"gate_{name}",
                help=GATE_HELP[name],
            )
            for col, (name, default) in zip(cols, defaults.items(), strict=True)
        }
    return GateThresholds(**values)


def gate_frame(verdicts: dict[str, GateVerdict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "set": name,
                "check": c.name,
                "value": c.value,
                "threshold (≤)": c.threshold,
                "chance level (95%)": c.chance_95,
                "result": "pass" if c.passed else ("not computed" if c.value is None else "FAIL"),
            }
            for name, v in verdicts.items()
            for c in v.checks
        ]
    )


def release_download(
    verdict: GateVerdict,
    payload: Callable[[], bytes],
    filename: str,
    mime: str,
    manifest_args: dict,
) -> None:
    """Download of one synthetic set with its release manifest; a failing set needs an explicit,
    reasoned override, which the manifest records."""
    reason = None
    if not verdict.passed:
        st.warning(
            f"**{verdict.set_name}** fails the release gate: {', '.join(verdict.failures)}.",
            icon=":material/gpp_bad:",
        )
        override = st.checkbox(
            "Override: release this set despite the failed checks", key="gate_override"
        )
        reason = st.text_input(
            "Reason for the override (recorded in the manifest)",
            key="gate_reason",
            disabled=not override,
        )
        if not (override and reason.strip()):
            st.caption("Downloading a failing set needs the override and a reason.")
            return
    else:
        st.success(f"**{verdict.set_name}** passes the release gate.", icon=":material/verified:")

    def manifest() -> bytes:
        signed = release_manifest(
            verdict,
            synthetic_sha256=hashlib.sha256(payload()).hexdigest(),
            override_reason=reason,
            **manifest_args,
        )
        return json.dumps(signed, indent=2).encode("utf-8")

    c1, c2 = st.columns(2)
    c1.download_button(
        "Download synthetic set", payload, filename, mime, key="gate_dl_data", type="primary"
    )
    c2.download_button(
        "Download release manifest (JSON)",
        manifest,
        f"{filename.rsplit('.', 1)[0]}.release.json",
        "application/json",
        key="gate_dl_manifest",
    )
