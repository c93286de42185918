"""Review-page helpers: metric explanations and cached suite runs."""

from __future__ import annotations

import streamlit as st

from core.ehr.encoding import VectorEncoding
from core.ehr.table import EHRTable
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
