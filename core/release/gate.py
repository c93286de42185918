"""Release gate: a data steward's privacy thresholds applied to a review, and the signed-off
release manifest that goes with an exported synthetic set.

Defaults and why:
- membership-inference advantage <= 0.05: the distance attacker may gain at most 5 points of
  TPR - FPR over a coin flip on balanced members / non-members;
- exact copies of training records <= 0: a synthetic record identical to a real training record
  is released patient data (raise it only for code data whose holdout already repeats itself,
  the review shows that baseline);
- DCR share closer to train than holdout <= 0.55: with equal-size train and holdout, 0.5 is what
  a model that never saw the training patients gets; 0.55 allows sampling noise at a few
  thousand records and flags memorisation beyond it;
- attribute-inference gap <= 0.05: knowing half a patient's features and the synthetic set must
  not let an attacker guess the rest better for training patients than for others.
A metric the review could not compute fails its check (the gate never passes on missing
evidence). Each check also states the level that a set of independent records reaches by chance
95% of the time at this sample size (advantage: the two-sample Kolmogorov-Smirnov critical value
1.36 sqrt(2 / n); DCR share: 0.5 + 1.645 x 0.5 / sqrt(n)), so a steward can see when a threshold
is tighter than the sampling noise of a small holdout.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from core import __version__
from core.errors import ConfigError
from core.metrics.suite import SUITE_VERSION, Review

GATE_VERSION = "1"


@dataclass(frozen=True)
class GateThresholds:
    mia_advantage: float = 0.05
    exact_copies: float = 0.0
    dcr_share: float = 0.55
    attribute_gap: float = 0.05

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"Gate threshold '{name}' must be between 0 and 1, got {value}.")


# threshold field -> (metric id in the review, how the value is read, label)
CHECKS = {
    "mia_advantage": (
        "mia_accuracy",
        lambda r: r.details["advantage"],
        "Membership-inference advantage",
    ),
    "exact_copies": ("exact_copies", lambda r: r.value, "Exact copies of training records"),
    "dcr_share": ("dcr_share", lambda r: r.value, "DCR share closer to train than holdout"),
    "attribute_gap": (
        "attribute_inference_gap",
        lambda r: r.value,
        "Attribute-inference gap",
    ),
}


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float | None  # None = the review did not compute it
    threshold: float
    passed: bool
    chance_95: float | None = None  # what independent data reaches by chance at this size


@dataclass(frozen=True)
class GateVerdict:
    set_name: str
    checks: tuple[GateCheck, ...]
    thresholds: GateThresholds

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]


def evaluate_gate(review: Review, thresholds: GateThresholds = GateThresholds()) -> GateVerdict:
    checks = []
    for field_name, (metric_id, read, label) in CHECKS.items():
        limit = getattr(thresholds, field_name)
        result = review.get(metric_id)
        value = None if result is None else float(read(result))
        chance = None
        if result is not None and field_name == "mia_advantage":
            chance = 1.36 * math.sqrt(2.0 / max(result.details["n_per_group"], 1))
        elif result is not None and field_name == "dcr_share":
            chance = 0.5 + 1.645 * 0.5 / math.sqrt(max(review.n_records, 1))
        checks.append(GateCheck(label, value, limit, value is not None and value <= limit, chance))
    return GateVerdict(review.name, tuple(checks), thresholds)


def release_manifest(
    verdict: GateVerdict,
    *,
    cohort_fingerprint: str,
    split: dict,
    provenance: dict,
    review_settings: dict,
    synthetic_sha256: str,
    override_reason: str | None = None,
) -> dict:
    """What was released, from what, judged how: the record a steward signs off.

    A failing verdict is only released with ``override_reason``; the reason is recorded.
    """
    if not verdict.passed and not (override_reason and override_reason.strip()):
        raise ConfigError(
            f"'{verdict.set_name}' fails the release gate ({', '.join(verdict.failures)}); "
            "releasing it needs an explicit override with a reason."
        )
    body = {
        "synthetic_set": verdict.set_name,
        "synthetic_sha256": synthetic_sha256,
        "verdict": "pass" if verdict.passed else "fail (released by override)",
        "checks": [asdict(c) for c in verdict.checks],
        "thresholds": asdict(verdict.thresholds),
        "override_reason": None if verdict.passed else override_reason.strip(),
        "real_cohort_fingerprint": cohort_fingerprint,
        "split": split,
        "provenance": provenance,  # model, checkpoint sha256, sampler, steps, seed
        "review_settings": review_settings,
        "versions": {"app": __version__, "metric_suite": SUITE_VERSION, "gate": GATE_VERSION},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return {**body, "manifest_sha256": hashlib.sha256(canonical).hexdigest()}
