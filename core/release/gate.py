"""Release gate: a set is released only when it is both private enough and useful enough, each
judged by a test with a stated error rate against a data steward's thresholds; and the signed-off
release manifest that goes with an exported set.

**How a check is judged.** Every check estimates a quantity with two one-sided confidence bounds.
For a privacy leak (what the synthetic set gives away beyond what data that never saw the
training patients gives away) the check **passes** when the upper 95% bound is at or below the
steward's threshold, **fails** when the lower 98.75% bound is above it, and is **inconclusive**
otherwise (the holdout is too small to tell). A fidelity floor is judged the same way from the
other side (pass when the lower 95% bound is at or above the floor, fail when the upper 98.75%
bound is below it).

**What a steward can rely on.**

- *Passing a set that leaks.* The gate passes a set only when every check passes: an
  intersection-union test (Berger 1982). Each check is a one-sided level-5% test of "the leak is
  at or above the threshold", so a set with any one leak at or above its threshold passes with
  probability at most 5%, however many checks there are (no Bonferroni split is needed to pass).
- *Failing a set that does not.* A check fails a set whose leak is at most its threshold with
  probability at most 1.25%, so the four default privacy checks together wrongly fail such a set
  in at most 5% of splits (Bonferroni), and a set that cannot leak (leak 0, well below the
  thresholds) far less often (1 of 164 repetitions in ``python -m benchmarks.release_gate``,
  where a set with a leak at the threshold was passed in 0 of 164).
- *Resolution.* :func:`detectable_advantage` gives, for the holdout at hand, the smallest
  membership advantage the gate tells from no leak with 80% power; the same number is the
  smallest threshold that a set which cannot leak passes with 80% power: a threshold below it
  leaves such sets inconclusive. The page, the report and the release manifest state it.

**Privacy checks.** Every training patient is an attack target (no same-size subsample of the
members; unequal groups enter the variances, ``core/metrics/leak_statistics.py``).

- membership-inference advantage (default <= 0.05): the distance attacker's best TPR - FPR among
  thresholds that flag at most 10% of the patients the model never saw (where attacks on
  individuals matter; over all thresholds the best-of-many bias alone is about 0.025 at 800
  holdout patients, which no valid test could pass at 0.05). Upper bound: the observed advantage
  (not debiased) plus 1.645 times a bound on the standard error of TPR - FPR at one such
  threshold; it covers the attacker's true best threshold, since the observed best is at least
  the estimate there. Lower bound: the observed advantage minus the 98.75% quantile of its
  permutation null (membership permuted: exact for "never saw the training patients", and it
  holds the selection bias). The estimate shown is the observed advantage minus the null's mean;
- exact copies (default <= 0.01): synthetic records identical to a training record beyond those
  identical to a holdout record, paired per synthetic record and counted in holdout-sized blocks
  of all training records, +- z standard errors; code data copies both alike, so natural
  duplicates do not fail it;
- DCR share (default excess <= 0.05): share of synthetic records closer to a training than to a
  holdout patient, both groups weighted equally (every training patient a reference), minus 0.5;
  +- z permutation standard errors;
- attribute-inference gap (default <= 0.05): the attacker's F1 on training minus holdout patients,
  minus its mean under the permutation null; upper bound + 1.645 null standard deviations, lower
  bound from the null's 98.75% quantile.

Optional checks, off unless the steward sets a threshold: Anonymeter's singling-out, linkability
and attribute-inference risks (residual risk beyond the holdout), their bounds recomputed from
the attack counts at the same one-sided levels (each added check can wrongly fail a set at its
threshold in at most 1.25% of splits more). A privacy metric the review could not compute fails
its check (the gate never passes on missing evidence).

**Fidelity floors** (issue #30: the gate judged only privacy, so useless data looked safest):

- validity (default: no invalid record): the share of released records that break a rule every
  real training record obeys (issue #28). Counted over the set being released, every record
  checked, so it has no sampling error and is never inconclusive;
- dimension-wise probability R² against the training split (default >= 0.9): likewise a property
  of the released records themselves (no interval);
- TSTR (default: the random forest's AUROC trained on the synthetic set at most 0.05 below the
  same forest trained on the real training split, both scored on the holdout): judged on the
  deficit TRTR - TSTR with its paired bootstrap standard error. Cohorts without a label have no
  TSTR; the floor then does not apply (listed as not applicable), but a TSTR the review tried and
  could not compute fails it.

- detection (off by default; a steward sets it): the AUROC of gradient-boosted trees telling
  synthetic from real training records out of fold, at most the threshold, judged with its
  bootstrap standard error like a leak (pass when the 95% upper bound is at or below it). Real
  against real scores about 0.5; the shipped PhysioNet EHRDiff scores about 0.92 on 3,200 records
  (its card), so a default would fail it: the steward chooses how distinguishable a release may be.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from statistics import NormalDist

from core import __version__
from core.errors import ConfigError
from core.metrics import anonymeter
from core.metrics.base import MetricResult
from core.metrics.ids import MetricId, detection_id, tstr_id
from core.metrics.leak_statistics import MAX_FPR, advantage_se
from core.metrics.suite import SUITE_VERSION, Review, ReviewKey

GATE_VERSION = "4"

ALPHA = 0.05  # one-sided, per check: chance of passing a set whose leak is at the threshold
ALPHA_FAIL = 0.0125  # one-sided, per check: chance of failing a set at its threshold
POWER = 0.8  # the power at which the detectable leak is stated
Z_PASS = NormalDist().inv_cdf(1 - ALPHA)  # 1.645
Z_FAIL = NormalDist().inv_cdf(1 - ALPHA_FAIL)  # 2.241

PRIVACY, FLOORS = "privacy", "fidelity floors"
GROUPS = (PRIVACY, FLOORS)


@dataclass(frozen=True)
class GateThresholds:
    mia_advantage: float = 0.05  # low-FPR advantage of the distance attack
    exact_copies: float = 0.01  # excess share of training copies over holdout copies
    dcr_share: float = 0.05  # excess share closer to train than 0.5
    attribute_gap: float = 0.05
    # fidelity floors (None: not checked)
    invalid_records: float | None = 0.0  # share of records breaking a rule no real record breaks
    dimwise_r2: float | None = 0.9  # dimension-wise probability R² against the training split
    tstr_deficit: float | None = 0.05  # TRTR - TSTR AUROC (random forest) allowed
    # highest AUROC of gradient boosting telling synthetic from real records (off by default)
    detection_auroc: float | None = None
    # optional (None = not checked): Anonymeter's residual risks
    singling_out: float | None = None
    linkability: float | None = None
    inference: float | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"Gate threshold '{name}' must be between 0 and 1, got {value}.")


# estimate, lower bound, upper bound: for a leak the upper is the pass bound (one-sided 95%) and
# the lower the fail bound (98.75%); for a floor the other way round
Estimate = tuple[float, float, float]


_NO_EVIDENCE: Estimate = (math.nan, math.nan, math.nan)  # a check without evidence fails


def _mia(r: MetricResult) -> Estimate:
    """Low-FPR advantage: its null's mean removed; fail bound from the null's quantile, pass
    bound from the bound on its standard error."""
    e = r.evidence
    if e is None or e.null is None or e.se is None:
        return _NO_EVIDENCE
    adv, null = e.estimate, e.null
    return adv - null.mean, adv - null.quantile(1 - ALPHA_FAIL), adv + Z_PASS * e.se


def _normal(value: float, se: float, floor: bool = False) -> Estimate:
    z_low, z_high = (Z_PASS, Z_FAIL) if floor else (Z_FAIL, Z_PASS)
    return value, value - z_low * se, value + z_high * se


def _standard_error(r: MetricResult) -> Estimate:
    """Excess copies, DCR share over chance, TSTR deficit: +- z standard errors."""
    e = r.evidence
    return _NO_EVIDENCE if e is None or e.se is None else _normal(e.estimate, e.se)


def _gap(r: MetricResult) -> Estimate:
    """Attribute-inference gap: bounds from its permutation null."""
    e = r.evidence
    if e is None or e.null is None:
        return _NO_EVIDENCE
    v, null = e.estimate, e.null
    return v - null.mean, v - null.quantile(1 - ALPHA_FAIL), v - null.mean + Z_PASS * null.sd


def _exact(value: float) -> Estimate:
    return value, value, value


def _invalid(r: MetricResult) -> Estimate:
    # the share breaking a rule no real record breaks; every released record counted
    return _exact(r.evidence.estimate if r.evidence is not None else 1.0 - r.value)


def _r2(r: MetricResult) -> Estimate:
    return _exact(r.value)  # the released records' own prevalences: no interval


def _anonymeter(r: MetricResult) -> Estimate:
    value, pass_error = anonymeter.residual_risk(r.details, Z_PASS)
    _, fail_error = anonymeter.residual_risk(r.details, Z_FAIL)
    return value, value - fail_error, value + pass_error


@dataclass(frozen=True)
class Check:
    metric_id: str  # the review's metric
    estimate: Callable[[MetricResult], Estimate]
    label: str
    group: str = PRIVACY
    at_least: bool = False  # a floor: the value must be at or above the threshold
    # the spec whose absence (it did not apply to this cohort) makes the check not applicable;
    # None: a missing metric fails the check
    applies_with: str | None = None


# threshold field -> its check
CHECKS: dict[str, Check] = {
    "mia_advantage": Check(MetricId.MIA, _mia, "Membership-inference advantage"),
    "exact_copies": Check(
        MetricId.EXACT_COPIES, _standard_error, "Exact copies of training records"
    ),
    "dcr_share": Check(MetricId.DCR, _standard_error, "DCR share closer to train than holdout"),
    "attribute_gap": Check(MetricId.ATTRIBUTE_INFERENCE, _gap, "Attribute-inference gap"),
    "invalid_records": Check(
        MetricId.VALIDITY, _invalid, "Records breaking the cohort's logic", FLOORS
    ),
    "dimwise_r2": Check(
        MetricId.DIMWISE_PROBABILITY, _r2, "Dimension-wise probability R²", FLOORS, at_least=True
    ),
    "tstr_deficit": Check(
        tstr_id("auroc", "random_forest"),
        _standard_error,
        "TSTR AUROC below train-on-real",
        FLOORS,
        applies_with=MetricId.TSTR,
    ),
    "detection_auroc": Check(
        detection_id("gradient_boosting"),
        _standard_error,
        "Detection AUROC (gradient boosting)",
        FLOORS,
        applies_with=MetricId.DETECTION,
    ),
    "singling_out": Check(MetricId.SINGLING_OUT, _anonymeter, "Anonymeter singling-out risk"),
    "linkability": Check(MetricId.LINKABILITY, _anonymeter, "Anonymeter linkability risk"),
    "inference": Check(MetricId.INFERENCE, _anonymeter, "Anonymeter attribute-inference risk"),
}
OPTIONAL = ("singling_out", "linkability", "inference")
VERDICTS = ("pass", "inconclusive", "fail")


def detectable_advantage(
    n_members: int,
    n_non_members: int,
    *,
    alpha: float = ALPHA,
    power: float = POWER,
    max_fpr: float = MAX_FPR,
) -> float:
    """The smallest membership advantage (TPR - FPR at FPR <= ``max_fpr``) a one-sided level-
    ``alpha`` test tells from no leak with probability ``power``, for these group sizes:
    (z_(1-alpha) + z_power) times the bound on the advantage's standard error. It is also the
    smallest threshold a set that cannot leak passes with that probability (normal approximation,
    one threshold; the best-threshold bias adds about 0.01 at 3,200 / 800)."""
    if min(n_members, n_non_members) < 1:
        raise ConfigError("the detectable advantage needs at least one member and one non-member")
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    return z * advantage_se(n_members, n_non_members, max_fpr)


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float | None  # the estimate; None = the review did not compute it
    threshold: float
    verdict: str  # pass | inconclusive | fail
    # (lower, upper): for a leak the upper is the one-sided 95% pass bound and the lower the
    # 98.75% fail bound; for a floor the lower passes and the upper fails
    ci: tuple[float, float] | None = None
    group: str = PRIVACY
    at_least: bool = False  # a floor (value >= threshold) rather than a leak (<=)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


def _worst(verdicts) -> str:
    return max(verdicts, key=VERDICTS.index, default="pass")


@dataclass(frozen=True)
class GateVerdict:
    set_name: str
    checks: tuple[GateCheck, ...]
    thresholds: GateThresholds
    review_key: ReviewKey | None = None  # what the review behind these checks reviewed
    # the smallest membership advantage this holdout detects (None: no membership attack ran)
    detectable: dict | None = None
    not_applicable: tuple[str, ...] = field(default=())  # checks the cohort has no data for

    @property
    def status(self) -> str:
        """fail if any check fails, else inconclusive if any is, else pass."""
        return _worst(c.verdict for c in self.checks)

    def group_status(self, group: str) -> str | None:
        """The verdict of one group of checks (None: the group has no checks)."""
        verdicts = [c.verdict for c in self.checks if c.group == group]
        return _worst(verdicts) if verdicts else None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def failures(self) -> list[str]:
        """Checks that did not pass (failed or inconclusive)."""
        return [c.name for c in self.checks if not c.passed]


def _judge(low: float, high: float, limit: float, at_least: bool) -> str:
    if at_least:  # a floor: pass when the lower bound reaches it, fail when the upper misses it
        return "fail" if high < limit else "pass" if low >= limit else "inconclusive"
    return "fail" if low > limit else "pass" if high <= limit else "inconclusive"


def _detectable(review: Review) -> dict | None:
    mia = review.get(MetricId.MIA)
    if mia is None or mia.evidence is None or mia.evidence.groups is None:
        return None
    n1, n0 = mia.evidence.groups
    return {
        "advantage": detectable_advantage(n1, n0),
        "n_members": n1,
        "n_non_members": n0,
        "alpha": ALPHA,
        "power": POWER,
        "max_fpr": MAX_FPR,
    }


def detectable_text(detectable: dict | None) -> str:
    """The sentence the page and the report show beside the gate."""
    if detectable is None:
        return "No membership attack ran, so the gate states no detectable leak."
    return (
        f"With {detectable['n_non_members']:,} holdout and {detectable['n_members']:,} training "
        f"patients the gate detects a membership advantage of {detectable['advantage']:.3f} or "
        f"more with {detectable['power']:.0%} power (one-sided, {detectable['alpha']:.0%}; "
        f"attacks flagging at most {detectable['max_fpr']:.0%} of unseen patients). A threshold "
        "below it leaves even a set that cannot leak inconclusive; more holdout patients lower it."
    )


def evaluate_gate(review: Review, thresholds: GateThresholds = GateThresholds()) -> GateVerdict:
    checks, not_applicable = [], []
    for field_name, check in CHECKS.items():
        limit = getattr(thresholds, field_name)
        if limit is None:
            continue
        result = review.get(check.metric_id)
        if result is None:
            if check.applies_with is not None and check.applies_with not in review.skipped:
                not_applicable.append(check.label)  # e.g. TSTR on a cohort without a label
                continue
            checks.append(GateCheck(check.label, None, limit, "fail", None, check.group))
            continue
        value, low, high = (float(v) for v in check.estimate(result))
        if math.isnan(low) or math.isnan(high):
            verdict, ci = "fail", None  # no spread could be estimated: no evidence either way
        else:
            verdict, ci = _judge(low, high, limit, check.at_least), (low, high)
        checks.append(
            GateCheck(check.label, value, limit, verdict, ci, check.group, check.at_least)
        )
    return GateVerdict(
        review.name,
        tuple(checks),
        thresholds,
        review.key,
        _detectable(review),
        tuple(not_applicable),
    )


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
        "groups": {g: verdict.group_status(g) for g in GROUPS},
        "thresholds": asdict(verdict.thresholds),
        "not_applicable": list(verdict.not_applicable),
        # the smallest membership advantage this holdout detects with 80% power
        "detectable_leak": verdict.detectable,
        "error_rates": {"pass_alpha": ALPHA, "fail_alpha": ALPHA_FAIL},
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
