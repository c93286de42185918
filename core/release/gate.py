"""Release gate: each privacy check is a test with a stated error rate, judged against a data
steward's thresholds, and the signed-off release manifest that goes with an exported set.

Every check estimates a leak (what the synthetic set gives away beyond what data that never saw
the training patients gives away) with an interval, and compares the interval with the
steward's threshold: **fail** when the whole interval is above it, **pass** when the whole
interval is at or below it, **inconclusive** when the interval straddles it (the holdout is too
small to tell). Intervals have 98.75% coverage each, so a set that cannot leak fails the four
checks together in at most 5% of splits, whatever the size (Bonferroni).

- membership-inference advantage (default <= 0.05): the distance attacker's best-threshold
  advantage minus its mean under the permutation null (member / non-member labels permuted,
  which is exact for "never saw the training patients" and includes the bias of taking the best
  of many thresholds); interval from the null's quantiles;
- exact copies (default <= 0.01): synthetic records identical to a training record beyond those
  identical to a holdout record, paired per synthetic record and counted
  in holdout-sized blocks, +-Z standard errors; code data copies both alike, so natural
  duplicates do not fail it;
- DCR share (default excess <= 0.05): share of synthetic records closer to train than to
  holdout, minus 0.5, +-Z binomial standard errors;
- attribute-inference gap (default <= 0.05): the attacker's F1 on training minus holdout patients,
  minus its mean under the permutation null, interval from the null's quantiles.
Optional checks, off unless the steward sets a threshold: Anonymeter's singling-out,
linkability and attribute-inference risks (residual risk beyond the holdout), with intervals
recomputed from the attack counts at the same 98.75% (each check added can wrongly fail a set
that cannot leak in at most 1.25% of splits more).
A metric the review could not compute fails its check (the gate never passes on missing evidence).

Beside the privacy checks, validity (issue #28): the share of released records that break a rule
every real training record obeys (default 0: one invalid record fails the set). It is counted
over the set being released, every record checked, so it has no sampling error and is never
inconclusive (the review's Wilson interval is about the generator's rate, not this set), and it
adds nothing to the family-wise error above.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from core import __version__
from core.errors import ConfigError
from core.metrics import anonymeter
from core.metrics.base import MetricResult
from core.metrics.suite import SUITE_VERSION, Review, ReviewKey

GATE_VERSION = "2"


@dataclass(frozen=True)
class GateThresholds:
    mia_advantage: float = 0.05  # excess advantage over the permutation null
    exact_copies: float = 0.01  # excess share of training copies over holdout copies
    dcr_share: float = 0.05  # excess share closer to train than 0.5
    attribute_gap: float = 0.05
    # share of records breaking a rule of the real records (None: privacy checks only)
    invalid_records: float | None = 0.0
    # optional (None = not checked): Anonymeter's residual risks
    singling_out: float | None = None
    linkability: float | None = None
    inference: float | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"Gate threshold '{name}' must be between 0 and 1, got {value}.")


Estimate = tuple[float, float, float]  # leak estimate, interval low, interval high


# Each interval has 98.75% coverage, so the four checks together wrongly fail a set that never
# saw the training patients in at most 5% of splits (Bonferroni).
Z = 2.4977  # standard normal 0.99375 quantile


def _permuted(observed: float, null: dict) -> Estimate:
    return observed - null["mean"], observed - null["q_high"], observed - null["q_low"]


def _mia(r: MetricResult) -> Estimate:
    return _permuted(r.details["advantage"], r.details["null_advantage"])


def _copies(r: MetricResult) -> Estimate:
    excess, se = r.details["excess_over_holdout"], r.details["excess_se"]
    return excess, excess - Z * se, excess + Z * se


def _dcr(r: MetricResult) -> Estimate:
    n = max(r.details.get("n_synthetic", 1), 1)
    se = math.sqrt(max(r.value * (1 - r.value), 0.25 / n) / n)
    return r.value - 0.5, r.value - 0.5 - Z * se, r.value - 0.5 + Z * se


def _gap(r: MetricResult) -> Estimate:
    return _permuted(r.value, r.details["null_gap"])


def _invalid(r: MetricResult) -> Estimate:
    share = 1.0 - r.value  # every released record counted: no interval
    return share, share, share


def _anonymeter(r: MetricResult) -> Estimate:
    value, error = anonymeter.residual_risk(r.details, Z)
    return value, value - error, value + error


# threshold field -> (metric id in the review, leak estimate with its interval, label)
CHECKS: dict[str, tuple[str, Callable[[MetricResult], Estimate], str]] = {
    "mia_advantage": ("mia_accuracy", _mia, "Membership-inference advantage"),
    "exact_copies": ("exact_copies", _copies, "Exact copies of training records"),
    "dcr_share": ("dcr_share", _dcr, "DCR share closer to train than holdout"),
    "attribute_gap": ("attribute_inference_gap", _gap, "Attribute-inference gap"),
    "invalid_records": ("validity", _invalid, "Records breaking the cohort's logic"),
    "singling_out": ("anonymeter_singling_out", _anonymeter, "Anonymeter singling-out risk"),
    "linkability": ("anonymeter_linkability", _anonymeter, "Anonymeter linkability risk"),
    "inference": ("anonymeter_inference", _anonymeter, "Anonymeter attribute-inference risk"),
}
OPTIONAL = ("singling_out", "linkability", "inference")
VERDICTS = ("pass", "inconclusive", "fail")


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float | None  # the leak estimate; None = the review did not compute it
    threshold: float
    verdict: str  # pass | inconclusive | fail
    ci: tuple[float, float] | None = None  # 98.75% interval (95% for the four checks together)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass(frozen=True)
class GateVerdict:
    set_name: str
    checks: tuple[GateCheck, ...]
    thresholds: GateThresholds
    review_key: ReviewKey | None = None  # what the review behind these checks reviewed

    @property
    def status(self) -> str:
        """fail if any check fails, else inconclusive if any is, else pass."""
        return max((c.verdict for c in self.checks), key=VERDICTS.index, default="pass")

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def failures(self) -> list[str]:
        """Checks that did not pass (failed or inconclusive)."""
        return [c.name for c in self.checks if not c.passed]


def _judge(low: float, high: float, limit: float) -> str:
    if low > limit:
        return "fail"
    return "pass" if high <= limit else "inconclusive"


def evaluate_gate(review: Review, thresholds: GateThresholds = GateThresholds()) -> GateVerdict:
    checks = []
    for field_name, (metric_id, estimate, label) in CHECKS.items():
        limit = getattr(thresholds, field_name)
        if limit is None:
            continue
        result = review.get(metric_id)
        if result is None:
            checks.append(GateCheck(label, None, limit, "fail"))
            continue
        value, low, high = (float(v) for v in estimate(result))
        checks.append(GateCheck(label, value, limit, _judge(low, high, limit), (low, high)))
    return GateVerdict(review.name, tuple(checks), thresholds, review.key)


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

    A failing verdict is only released with ``override_reason``; the reason is recorded. The
    verdict's review key is recorded as ``review``: :func:`core.release.publish.publish`
    refuses the manifest unless it names the cohort, split, file and settings reviewed.
    """
    if not verdict.passed and not (override_reason and override_reason.strip()):
        raise ConfigError(
            f"'{verdict.set_name}' does not pass the release gate ({verdict.status}: "
            f"{', '.join(verdict.failures)}); releasing it needs an explicit override with a reason."
        )
    body = {
        "synthetic_set": verdict.set_name,
        "synthetic_sha256": synthetic_sha256,
        "verdict": "pass" if verdict.passed else f"{verdict.status} (released by override)",
        "checks": [asdict(c) for c in verdict.checks],
        "thresholds": asdict(verdict.thresholds),
        "override_reason": None if verdict.passed else override_reason.strip(),
        "real_cohort_fingerprint": cohort_fingerprint,
        "split": split,
        "provenance": provenance,  # model, checkpoint sha256, sampler, steps, seed
        "review_settings": review_settings,
        "review": None if verdict.review_key is None else verdict.review_key.as_dict(),
        "versions": {"app": __version__, "metric_suite": SUITE_VERSION, "gate": GATE_VERSION},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return {**body, "manifest_sha256": hashlib.sha256(canonical).hexdigest()}


# review key field -> (manifest field it must equal, what a message calls it)
BOUND = {
    "cohort_fingerprint": ("real_cohort_fingerprint", "cohort fingerprint"),
    "split": ("split", "train/holdout split"),
    "synthetic_sha256": ("synthetic_sha256", "synthetic set's sha256"),
    "settings": ("review_settings", "review settings"),
}


def _short(value: object) -> str:
    if isinstance(value, str) and len(value) == 64:
        return f"{value[:12]}..."  # a sha256: its start tells them apart
    if isinstance(value, dict):
        return ", ".join(f"{k} {_short(v)}" for k, v in sorted(value.items()))
    return str(value)


def binding_problems(manifest: dict) -> list[str]:
    """Why ``manifest`` does not hold its review to what it releases (empty: it does): the
    review must name the very cohort, split, file and settings the manifest names."""
    review = manifest.get("review")
    if not isinstance(review, dict):
        return ["it does not name the review its checks come from"]
    problems = []
    for field_name, (manifest_field, label) in BOUND.items():
        reviewed, named = review.get(field_name), manifest.get(manifest_field)
        if reviewed != named:
            problems.append(f"the {label} (reviewed: {_short(reviewed)}; named: {_short(named)})")
    return problems
