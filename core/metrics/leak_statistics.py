"""Sampling distributions of the privacy leaks the release gate judges (core/release/gate.py).

Every training patient is an attack target (no same-size subsample of the members), so each
estimate comes with the spread that unequal groups give it:

- the distance attacker's advantage at low false-positive rates (thresholds that flag at most
  :data:`MAX_FPR` of the patients the model never saw), with an analytic bound on its standard
  error and its permutation null;
- the DCR share with both groups weighted equally, with the permutation variance of the
  synthetic records' nearest real patients;
- a permutation null summary (mean, standard deviation, upper quantiles) any statistic can use.
"""

from __future__ import annotations

import math

import numpy as np

from core.metrics.base import GateEvidence, NullSummary

# Attacks are judged where they matter for individuals: thresholds that wrongly flag at most 10%
# of unseen patients (Carlini et al., S&P 2022: average-case accuracy hides low-FPR attacks). The
# best of all thresholds has a selection bias about as large as the 0.05 threshold at 800
# holdout patients, which no valid test can pass; below 10% FPR both bias and spread are small.
MAX_FPR = 0.1
PERMUTATIONS = 800
# Upper quantiles the null summaries keep (the gate's fail bounds read one of them).
NULL_LEVELS = (0.5, 0.9, 0.95, 0.975, 0.9875, 0.99, 0.995, 0.999)


def roc_points(d: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TPR and FPR of "member when the nearest synthetic record is within the threshold" at
    every distinct threshold, starting at (0, 0); ties move together."""
    order = np.argsort(d, kind="stable")
    ds = d[order]
    return _sorted_roc(members[order], np.r_[ds[1:] != ds[:-1], True])


def _sorted_roc(ms: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tpr = np.r_[0.0, np.cumsum(ms)[last] / max(ms.sum(), 1)]
    fpr = np.r_[0.0, np.cumsum(~ms)[last] / max((~ms).sum(), 1)]
    return tpr, fpr


def _low_fpr_advantage(tpr: np.ndarray, fpr: np.ndarray, max_fpr: float) -> float:
    """max TPR - FPR over the ROC curve at FPR <= ``max_fpr``. Between two thresholds the curve
    is a straight line (an attacker who flags part of a tie at random), so the point at exactly
    ``max_fpr`` counts too: ties (identical code sets) cannot hide a leak behind a large group."""
    ok = fpr <= max_fpr
    best = float(np.max(tpr[ok] - fpr[ok]))
    k = int(np.searchsorted(fpr, max_fpr, side="right"))  # first point beyond max_fpr
    if k < len(fpr):
        w = (max_fpr - fpr[k - 1]) / (fpr[k] - fpr[k - 1])
        best = max(best, float(tpr[k - 1] + w * (tpr[k] - tpr[k - 1]) - max_fpr))
    return max(best, 0.0)


def low_fpr_advantage(d: np.ndarray, members: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """The best advantage (TPR - FPR) of the distance attack among thresholds whose FPR is at
    most ``max_fpr``; ``d``: each real patient's distance to the nearest synthetic record."""
    return _low_fpr_advantage(*roc_points(d, members), max_fpr)


def low_fpr_null(
    d: np.ndarray,
    members: np.ndarray,
    *,
    max_fpr: float = MAX_FPR,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> np.ndarray:
    """:func:`low_fpr_advantage` with member / non-member labels permuted: its distribution when
    the synthetic set never saw the training patients (exact then, best-threshold bias included)."""
    rng = np.random.default_rng(seed)
    ds = np.sort(d, kind="stable")
    last = np.r_[ds[1:] != ds[:-1], True]
    return np.array(
        [
            _low_fpr_advantage(*_sorted_roc(rng.permutation(members), last), max_fpr)
            for _ in range(permutations)
        ]
    )


def advantage_se(n_members: int, n_non_members: int, max_fpr: float = MAX_FPR) -> float:
    """Upper bound on the standard error of TPR - FPR at one threshold with FPR <= ``max_fpr``:
    TPR is a share of the members (variance at most 0.25 / n), FPR of the non-members (at most
    max_fpr (1 - max_fpr) / n). Unequal groups enter as they are."""
    f = min(max_fpr, 0.5)
    return math.sqrt(0.25 / n_members + f * (1 - f) / n_non_members)


def null_summary(null: np.ndarray, observed: float) -> NullSummary:
    """Mean, standard deviation and upper quantiles of a permutation null, and the one-sided
    p-value of ``observed``."""
    return NullSummary(
        mean=float(null.mean()),
        sd=float(null.std(ddof=1)) if len(null) > 1 else 0.0,
        quantiles={f"{q:g}": float(np.quantile(null, q)) for q in NULL_LEVELS},
        p_value=float((1 + np.sum(null >= observed)) / (1 + len(null))),
        permutations=len(null),
    )


def membership_evidence(d: np.ndarray, members: np.ndarray, seed: int = 0) -> GateEvidence:
    """What the gate's membership check reads: the low-FPR advantage, the bound on its standard
    error, its permutation null and the group sizes."""
    n1, n0 = int(members.sum()), int((~members).sum())
    observed = low_fpr_advantage(d, members)
    null = low_fpr_null(d, members, seed=seed)
    return GateEvidence(observed, advantage_se(n1, n0), null_summary(null, observed), (n1, n0))


def membership_details(evidence: GateEvidence) -> dict:
    """The membership evidence as the result's JSON-ready details (pages, reports)."""
    assert evidence.groups is not None and evidence.null is not None
    return {
        "n_members": evidence.groups[0],
        "n_non_members": evidence.groups[1],
        "low_fpr": {
            "max_fpr": MAX_FPR,
            "advantage": evidence.estimate,
            "se_bound": evidence.se,
            "null": evidence.null.as_dict(),
        },
    }


def balanced_dcr(
    d_train: np.ndarray,
    d_holdout: np.ndarray,
    nearest_train: np.ndarray,
    nearest_holdout: np.ndarray,
    n_train: int,
    n_holdout: int,
) -> tuple[float, float]:
    """Share of synthetic records closer to a training than to a holdout patient, with every
    training patient as a reference and both groups weighted equally, and its standard error.

    Against all ``n_train`` training and ``n_holdout`` holdout patients, a synthetic record's
    nearest real patient is a training one with chance pi = n_train / N when the model never saw
    them (a tie between the two counts as pi). The share S of such records is turned into the
    equal-weight share S n_h / (S n_h + (1 - S) n_t) (0.5 at chance, 1 for copies), the scale of
    a comparison against equally large groups. Its variance is the permutation variance of S
    (which real patients are the members, given which of them the synthetic records fall
    nearest; analytic for a sum over a random subset) through the delta method.
    """
    n, m = n_train + n_holdout, len(d_train)
    pi = n_train / n
    closer = np.where(d_train < d_holdout, 1.0, np.where(d_train > d_holdout, 0.0, pi))
    s = float(closer.mean())
    untied = d_train != d_holdout
    # Each untied synthetic record sits with its nearest real patient (train rows, then holdout).
    owner = np.where(d_train < d_holdout, nearest_train, n_train + nearest_holdout)[untied]
    share_of = np.bincount(owner, minlength=n) / m
    var_s = n_train * n_holdout / (n * (n - 1)) * float(np.sum((share_of - share_of.mean()) ** 2))
    denom = s * n_holdout + (1 - s) * n_train
    share = s * n_holdout / denom
    slope = n_train * n_holdout / denom**2
    return float(share), float(slope * math.sqrt(var_s))
