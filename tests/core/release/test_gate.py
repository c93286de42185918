"""Release gate: known answers (a copy of the training set fails, independent data passes) and
the override rule of the release manifest."""

import numpy as np
import pytest

from core.errors import ConfigError
from core.metrics.suite import ReviewSettings, review
from core.release.gate import GateThresholds, evaluate_gate, release_manifest
from tests.core.metrics.test_suite import codes

SETTINGS = ReviewSettings(bootstrap=20, mmd_max_records=500)


def draw(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 60)) < 0.3).astype(np.float32)


@pytest.fixture(scope="module")
def real():
    return codes(draw(2000, 0), "t"), codes(draw(2000, 1), "h")


def manifest_for(verdict, reason=None):
    return release_manifest(
        verdict,
        cohort_fingerprint="f" * 64,
        split={"seed": 0},
        provenance={"model": "m"},
        review_settings={"seed": 0},
        synthetic_sha256="s" * 64,
        override_reason=reason,
    )


def test_a_copy_of_the_training_set_fails_every_check_and_needs_an_override(real):
    train, holdout = real
    leak = review("copy", train, holdout, train, settings=SETTINGS)
    verdict = evaluate_gate(leak)
    assert not verdict.passed
    assert set(verdict.failures) == {
        "Membership-inference advantage",
        "Exact copies of training records",
        "DCR share closer to train than holdout",
        "Attribute-inference gap",
    }
    with pytest.raises(ConfigError, match="needs an explicit override"):
        manifest_for(verdict)
    signed = manifest_for(verdict, "  internal test release, approved by DS  ")
    assert signed["verdict"] == "fail (released by override)"
    assert signed["override_reason"] == "internal test release, approved by DS"
    assert len(signed["manifest_sha256"]) == 64


def test_independent_records_pass_with_the_default_thresholds(real):
    train, holdout = real
    fresh = review("fresh", train, holdout, codes(draw(2000, 2), "s"), settings=SETTINGS)
    verdict = evaluate_gate(fresh)
    assert verdict.passed, verdict.checks
    signed = manifest_for(verdict)
    assert signed["verdict"] == "pass" and signed["override_reason"] is None
    adv = next(c for c in verdict.checks if c.name.startswith("Membership"))
    assert adv.ci[0] < adv.value < adv.ci[1] and adv.ci[1] <= 0.05


def test_missing_evidence_fails_and_thresholds_are_validated(real):
    train, holdout = real
    fresh = review("fresh", train, holdout, codes(draw(300, 3), "s"), settings=SETTINGS)
    fresh.results[:] = [r for r in fresh.results if not r.name.startswith("DCR")]
    verdict = evaluate_gate(fresh)
    dcr = next(c for c in verdict.checks if c.name.startswith("DCR"))
    assert dcr.value is None and not dcr.passed and not verdict.passed
    with pytest.raises(ConfigError, match="between 0 and 1"):
        GateThresholds(dcr_share=1.5)


def test_known_answer_rates_over_cohort_sizes():
    """Independent draws never fail (pass or inconclusive), copies of train fail at >= 300,
    10% copied training records fail at >= 1,000 (full sweep: benchmarks/release_gate.py)."""
    from benchmarks.release_gate import gate_status

    independent = [gate_status(n, "independent", s) for n in (300, 1000) for s in range(10)]
    assert independent.count("fail") <= 1  # family-wise false-fail rate is at most 5%
    assert gate_status(3000, "independent", 0) == "pass"
    assert all(gate_status(n, "copy", s) == "fail" for n in (300, 1000) for s in range(3))
    assert all(gate_status(1000, "10% copies", s) == "fail" for s in range(3))
