"""Every review metric's id, declared once.

The metric that computes a result, its registry entry (:mod:`core.metrics.specs`), the release
gate, the report and the pages all name it by these members. They are strings (``StrEnum``):
results, JSON reports and manifests hold the same text as before.
"""

from __future__ import annotations

from enum import StrEnum


class MetricId(StrEnum):
    # fidelity
    DIMWISE_PROBABILITY = "dimwise_probability_r2"
    DIMWISE_PREDICTION = "dimwise_prediction_r2"
    MMD = "mmd"
    CORRELATION = "correlation_difference"
    NUMERIC_MARGINALS = "numeric_marginals_ks"
    COLUMN_FIDELITY = "column_fidelity_worst"
    MISSINGNESS = "missingness_difference"
    VALIDITY = "validity"
    CODES_PER_RECORD = "codes_per_record_w1"
    DETECTION = "detection"  # a spec: one result per classifier (detection_id)
    PRECISION_RECALL = "precision_recall_authenticity"  # a spec: the three below
    ALPHA_PRECISION = "alpha_precision"
    BETA_RECALL = "beta_recall"
    AUTHENTICITY = "authenticity"
    PAIR_TRENDS = "pair_trends"
    # utility
    TSTR = "tstr"  # a spec: one result per score and classifier (tstr_id)
    # privacy
    MIA = "mia_accuracy"
    DOMIAS = "domias_auroc"
    DCR = "dcr_share"
    EXACT_COPIES = "exact_copies"
    NNDR = "nndr"
    ATTRIBUTE_INFERENCE = "attribute_inference_gap"
    SINGLING_OUT = "anonymeter_singling_out"
    LINKABILITY = "anonymeter_linkability"
    INFERENCE = "anonymeter_inference"
    # visit sequences
    VISITS_PER_PATIENT = "visits_per_patient_w1"
    GAPS = "gap_ks"
    PREVALENCE_BY_VISIT = "prevalence_by_visit_r2"
    COOCCURRENCE = "consecutive_cooccurrence_r2"
    LONGITUDINAL_PERPLEXITY = "longitudinal_perplexity"
    CROSS_MODALITY_PERPLEXITY = "cross_modality_perplexity"
    NEXT_VISIT_TSTR = "next_visit_tstr_auroc"
    AUGMENTATION = "augmentation_auroc"


def tstr_id(score: str, classifier: str) -> str:
    """``tstr_auroc_random_forest``: TSTR by one score (auroc, aupr) of one classifier."""
    return f"{MetricId.TSTR}_{score}_{classifier}"


def detection_id(classifier: str) -> str:
    """``detection_auroc_logistic_regression``: the detection AUROC of one classifier."""
    return f"{MetricId.DETECTION}_auroc_{classifier}"
