"""Metric ids are declared once (core.metrics.ids) and stay plain strings wherever they go."""

import json

from core.metrics.ids import MetricId, detection_id, tstr_id
from core.metrics.specs import METRICS
from core.release.gate import CHECKS


def test_every_spec_and_gate_check_names_a_declared_id():
    declared = set(MetricId)
    assert {s.id for s in METRICS} <= declared
    composite = {tstr_id("auroc", "random_forest"), detection_id("gradient_boosting")}
    assert {c.metric_id for c in CHECKS.values()} <= declared | composite


def test_ids_read_as_the_strings_they_were():
    assert tstr_id("auroc", "random_forest") == "tstr_auroc_random_forest"
    assert detection_id("gradient_boosting") == "detection_auroc_gradient_boosting"
    assert json.dumps({MetricId.MIA: MetricId.MMD}) == '{"mia_accuracy": "mmd"}'
    assert f"{MetricId.DCR}" == "dcr_share" and MetricId.DCR == "dcr_share"
