"""Privacy audit with canaries in one training run (Steinke, Nasr & Jagielski, "Privacy auditing
with one (1) training run", NeurIPS 2023).

m canary records are drawn; a seeded fair coin decides, for each, whether it goes into the
training data. After training, an attack scores every canary (higher = "looks trained on"). The
auditor guesses "included" for the ``k_plus`` highest scores, "excluded" for the ``k_minus``
lowest, and abstains on the rest. The paper's main result (pure DP, delta = 0): if training is
eps-DP, the number W of correct guesses among the r = k_plus + k_minus made is stochastically
dominated by Binomial(r, e^eps / (1 + e^eps)), for every attack and every way the scores depend
on the coins. So observing v correct guesses rules out every eps with
P[Binomial(r, e^eps / (1 + e^eps)) >= v] <= 1 - confidence, and the largest such eps is a
lower bound on the true eps that holds with probability ``confidence``.

The binomial tail P[Binomial(r, p) >= v] is the regularised incomplete beta function
I_p(v, r - v + 1), increasing in p, so the boundary p* is the Beta(v, r - v + 1) quantile at
1 - confidence (the one-sided Clopper-Pearson lower bound of the guessing accuracy) and
eps = log(p* / (1 - p*)), or 0 when p* <= 1/2. The approximate-DP version of the theorem
(delta > 0) adds a term that needs m and delta; with delta = 0 the bound is the one for pure DP,
the strongest claim, which is what a generator without a formal guarantee is audited against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from core.errors import ConfigError

CONFIDENCE = 0.95


def canary_coins(m: int, seed: int) -> np.ndarray:
    """Which of ``m`` canaries are put into training: independent fair coins, seeded."""
    if m < 1:
        raise ConfigError(f"the audit needs at least one canary, got {m}")
    return np.random.default_rng(seed).random(m) < 0.5


def epsilon_lower_bound(correct: int, guesses: int, confidence: float = CONFIDENCE) -> float:
    """The largest eps with P[Binomial(guesses, e^eps/(1+e^eps)) >= correct] <= 1 - confidence
    (0 when even eps = 0 is not ruled out)."""
    if not 0 <= correct <= guesses:
        raise ConfigError(f"correct guesses must be between 0 and {guesses}, got {correct}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if correct == 0:
        return 0.0
    p = float(stats.beta.ppf(1 - confidence, correct, guesses - correct + 1))
    if p <= 0.5:
        return 0.0
    return math.log(p / (1 - p)) if p < 1 else math.inf


@dataclass(frozen=True)
class CanaryAudit:
    epsilon_lower_bound: float
    confidence: float
    canaries: int
    included: int
    k_plus: int
    k_minus: int
    correct: int

    @property
    def guesses(self) -> int:
        return self.k_plus + self.k_minus

    @property
    def accuracy(self) -> float:
        return self.correct / self.guesses if self.guesses else float("nan")

    def as_dict(self) -> dict:
        return {
            "epsilon_lower_bound": self.epsilon_lower_bound,
            "confidence": self.confidence,
            "canaries": self.canaries,
            "included": self.included,
            "k_plus": self.k_plus,
            "k_minus": self.k_minus,
            "guesses": self.guesses,
            "correct": self.correct,
            "accuracy": self.accuracy,
        }


def audit(
    included: np.ndarray,
    scores: np.ndarray,
    k_plus: int,
    k_minus: int = 0,
    *,
    confidence: float = CONFIDENCE,
) -> CanaryAudit:
    """Guess "included" for the ``k_plus`` highest ``scores`` and "excluded" for the ``k_minus``
    lowest (ties broken by canary order, fixed before the scores are seen), count the correct
    guesses against the coins ``included`` and bound eps. ``k_plus`` and ``k_minus`` must be
    chosen before looking at the scores; :func:`audit_over` tries several with a correction."""
    inc = np.asarray(included, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(inc) != len(s):
        raise ConfigError(f"{len(inc)} coins but {len(s)} canary scores")
    if not np.isfinite(s).all():
        raise ConfigError("canary scores must be finite numbers (found NaN or infinity)")
    if k_plus < 0 or k_minus < 0 or k_plus + k_minus > len(s):
        raise ConfigError(
            f"guesses k+ = {k_plus} and k- = {k_minus} must be >= 0 and at most {len(s)} together"
        )
    order = np.argsort(-s, kind="stable")
    top, bottom = order[:k_plus], order[len(s) - k_minus :]
    correct = int(inc[top].sum() + (~inc[bottom]).sum())
    return CanaryAudit(
        epsilon_lower_bound=epsilon_lower_bound(correct, k_plus + k_minus, confidence),
        confidence=confidence,
        canaries=len(s),
        included=int(inc.sum()),
        k_plus=k_plus,
        k_minus=k_minus,
        correct=correct,
    )


def audit_over(
    included: np.ndarray,
    scores: np.ndarray,
    guesses: tuple[tuple[int, int], ...],
    *,
    confidence: float = CONFIDENCE,
) -> CanaryAudit:
    """The best of several (k_plus, k_minus) choices, each bounded at 1 - (1 - confidence) / len
    (Bonferroni), so the reported bound still holds at ``confidence``."""
    if not guesses:
        raise ConfigError("give at least one (k_plus, k_minus) pair")
    level = 1 - (1 - confidence) / len(guesses)
    best = max(
        (audit(included, scores, kp, km, confidence=level) for kp, km in guesses),
        key=lambda a: a.epsilon_lower_bound,
    )
    return CanaryAudit(
        best.epsilon_lower_bound,
        confidence,
        best.canaries,
        best.included,
        best.k_plus,
        best.k_minus,
        best.correct,
    )
