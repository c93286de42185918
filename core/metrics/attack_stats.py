"""What a membership-inference attack achieved, from its scores on members and non-members.

Every attack of the battery (distance, DOMIAS, ...) scores each real record, higher meaning "more
likely a training member". From those scores this module reports, the same way for every attack:

- ROC AUROC with a DeLong interval (DeLong, DeLong & Clarke-Pearson, Biometrics 1988; computed
  with midranks as in Sun & Xu, IEEE SPL 2014);
- the true-positive rate at 0.1%, 1% and 10% false-positive rate (attacks are judged where they
  are confident: Carlini et al., "Membership inference attacks from first principles", S&P 2022),
  each with exact Clopper-Pearson intervals for the TPR and the FPR it reached;
- the empirical epsilon lower bound the best of those operating points implies.

The epsilon bound. An (eps, delta)-DP mechanism limits every membership test (Kairouz, Oh &
Viswanath, ICML 2015; used for auditing by Jagielski, Ullman & Oprea, NeurIPS 2020):
``TPR <= e^eps FPR + delta`` and ``1 - FPR <= e^eps (1 - TPR) + delta``, so

    eps >= max( log((TPR - delta) / FPR), log((1 - FPR - delta) / (1 - TPR)) ).

Plugging in estimates would overstate eps, so the bound uses the one-sided Clopper-Pearson lower
bound of the TPR and upper bound of the FPR. Each operating point's threshold is an order
statistic of the non-member scores, for which the Clopper-Pearson upper bound of the FPR is exact
(the true FPR above the (k+1)-th largest of n continuous scores is Beta(k+1, n-k)); the members
are scored independently of that threshold, so their count above it is binomial. The best of the
operating points is reported, so the 1 - confidence error is split over every bound used
(Bonferroni: two per operating point): the reported eps is itself a ``confidence`` lower bound.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import roc_curve

from core.errors import ConfigError

FPR_TARGETS = (0.001, 0.01, 0.1)
DELTA = 1e-5
CONFIDENCE = 0.95


@dataclass(frozen=True)
class OperatingPoint:
    """The attack at one false-positive target: "member" when the score exceeds ``threshold``."""

    fpr_target: float
    threshold: float
    true_positives: int
    members: int
    false_positives: int
    non_members: int
    tpr: float
    tpr_ci: tuple[float, float]  # two-sided Clopper-Pearson at the stated confidence
    fpr: float
    fpr_ci: tuple[float, float]
    tpr_lower: float  # one-sided, Bonferroni-adjusted: what the epsilon bound uses
    fpr_upper: float
    epsilon: float  # the lower bound this point alone implies (0 when it implies none)


@dataclass(frozen=True)
class AttackStats:
    auroc: float
    auroc_ci: tuple[float, float]
    auroc_se: float
    points: tuple[OperatingPoint, ...]
    epsilon_lower_bound: float
    epsilon_at_fpr: float | None  # the operating point that gives it (None: no point does)
    delta: float
    confidence: float
    advantage: float  # max over thresholds of TPR - FPR
    roc_fpr: tuple[float, ...]
    roc_tpr: tuple[float, ...]
    n_members: int
    n_non_members: int

    def tpr_at(self, fpr_target: float) -> OperatingPoint:
        return next(p for p in self.points if math.isclose(p.fpr_target, fpr_target))

    def details(self) -> dict:
        """The fields a MetricResult's ``details`` carries, under names shared by every attack.
        Operating points are keyed by their FPR target ("0.001") so the JSON export keeps them."""
        return {
            "auroc": self.auroc,
            "auroc_ci": self.auroc_ci,
            "auroc_se": self.auroc_se,
            "tpr_at_fpr": {f"{p.fpr_target:g}": asdict(p) for p in self.points},
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "epsilon_at_fpr": self.epsilon_at_fpr,
            "epsilon_delta": self.delta,
            "epsilon_confidence": self.confidence,
            "roc_fpr": list(self.roc_fpr),
            "roc_tpr": list(self.roc_tpr),
            "n_members": self.n_members,
            "n_non_members": self.n_non_members,
        }


def delong(members: np.ndarray, non_members: np.ndarray) -> tuple[float, float]:
    """AUROC (ties count half) and its DeLong standard error."""
    m, n = len(members), len(non_members)
    combined = stats.rankdata(np.r_[members, non_members])
    within_m = stats.rankdata(members)
    within_n = stats.rankdata(non_members)
    auc = (combined[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (combined[:m] - within_m) / n  # per member: share of non-members below it
    v01 = 1.0 - (combined[m:] - within_n) / m  # per non-member: share of members above it
    var = (v10.var(ddof=1) if m > 1 else 0.0) / m + (v01.var(ddof=1) if n > 1 else 0.0) / n
    return float(auc), float(math.sqrt(max(var, 0.0)))


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Exact two-sided interval of a binomial proportion."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def one_sided(k: int, n: int, alpha: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds at level 1 - alpha each: (lower, upper)."""
    lower = 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    upper = 1.0 if k == n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))
    return lower, upper


def epsilon_from(tpr: float, fpr: float, delta: float) -> float:
    """The hypothesis-testing bound on eps for one (TPR, FPR) pair (0 when it implies none)."""
    bounds = [0.0]
    if fpr > 0 and tpr - delta > 0:
        bounds.append(math.log((tpr - delta) / fpr))
    if tpr < 1 and 1 - fpr - delta > 0:
        bounds.append(math.log((1 - fpr - delta) / (1 - tpr)))
    return max(bounds)


def _curve(y: np.ndarray, scores: np.ndarray, points: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve thinned for plotting on a log-FPR axis: points spread evenly in log FPR (the
    low-FPR end kept point for point) plus evenly along the curve."""
    fpr, tpr, _ = roc_curve(y, scores)
    if len(fpr) <= 2 * points:
        return fpr, tpr
    positive = fpr[fpr > 0]
    grid = np.geomspace(positive.min(), 1.0, points)
    keep = np.searchsorted(fpr, grid, side="left")
    keep = np.r_[keep, np.maximum(keep - 1, 0), np.linspace(0, len(fpr) - 1, points).astype(int)]
    keep = np.unique(np.clip(keep, 0, len(fpr) - 1))
    return fpr[keep], tpr[keep]


def attack_stats(
    member_scores: np.ndarray,
    non_member_scores: np.ndarray,
    *,
    fpr_targets: tuple[float, ...] = FPR_TARGETS,
    delta: float = DELTA,
    confidence: float = CONFIDENCE,
) -> AttackStats:
    """Summarise an attack from its scores (higher = more likely a member)."""
    s_m = np.asarray(member_scores, dtype=np.float64).ravel()
    s_n = np.asarray(non_member_scores, dtype=np.float64).ravel()
    if len(s_m) < 2 or len(s_n) < 2:
        raise ConfigError(
            f"an attack needs at least two member and two non-member scores, got {len(s_m)} "
            f"and {len(s_n)}"
        )
    if not (np.isfinite(s_m).all() and np.isfinite(s_n).all()):
        raise ConfigError("attack scores must be finite numbers (found NaN or infinity)")
    if not 0 < confidence < 1 or not 0 <= delta < 1:
        raise ConfigError(
            f"confidence must be in (0, 1) and delta in [0, 1): {confidence}, {delta}"
        )
    m, n = len(s_m), len(s_n)
    auc, se = delong(s_m, s_n)
    z = stats.norm.ppf(0.5 + confidence / 2)
    auroc_ci = (max(0.0, auc - z * se), min(1.0, auc + z * se))
    alpha = (1 - confidence) / (2 * len(fpr_targets))  # Bonferroni over every one-sided bound
    desc = np.sort(s_n)[::-1]
    points = []
    for target in fpr_targets:
        k = int(math.floor(target * n + 1e-9))  # non-members allowed above the threshold
        threshold = float(desc[min(k, n - 1)])
        tp = int(np.sum(s_m > threshold))
        fp = int(np.sum(s_n > threshold))
        lower, _ = one_sided(tp, m, alpha)
        _, upper = one_sided(fp, n, alpha)
        points.append(
            OperatingPoint(
                fpr_target=float(target),
                threshold=threshold,
                true_positives=tp,
                members=m,
                false_positives=fp,
                non_members=n,
                tpr=tp / m,
                tpr_ci=clopper_pearson(tp, m, confidence),
                fpr=fp / n,
                fpr_ci=clopper_pearson(fp, n, confidence),
                tpr_lower=lower,
                fpr_upper=upper,
                epsilon=epsilon_from(lower, upper, delta),
            )
        )
    best = max(points, key=lambda p: p.epsilon)
    y = np.r_[np.ones(m), np.zeros(n)]
    scores = np.r_[s_m, s_n]
    full_fpr, full_tpr, _ = roc_curve(y, scores)
    fpr, tpr = _curve(y, scores)
    return AttackStats(
        auroc=auc,
        auroc_ci=(float(auroc_ci[0]), float(auroc_ci[1])),
        auroc_se=se,
        points=tuple(points),
        epsilon_lower_bound=best.epsilon,
        epsilon_at_fpr=best.fpr_target if best.epsilon > 0 else None,
        delta=delta,
        confidence=confidence,
        advantage=float(max(0.0, np.max(full_tpr - full_fpr))),
        roc_fpr=tuple(float(v) for v in fpr),
        roc_tpr=tuple(float(v) for v in tpr),
        n_members=m,
        n_non_members=n,
    )
