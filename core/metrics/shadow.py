"""Shadow-model membership attack: a per-target likelihood ratio learned from shadow models.

The recipe of the attacks that won the 2025 MIDST challenge against tabular diffusion models and
of TAPAS (Houssiau et al. 2022), scored as LiRA (Carlini et al., "Membership inference attacks
from first principles", S&P 2022):

1. Targets: records whose membership is tested (half trained on by the audited model, half not).
2. K shadow models of the same family and settings are trained on population records, each
   target included in exactly half of them (:func:`inclusion_plan`: a balanced design, so every
   target has K/2 "in" and K/2 "out" shadows).
3. Every shadow's synthetic set gives each target a feature (:func:`target_features`: the log of
   its L1 distance to the nearest synthetic record; a memorised record is close to a synthetic
   one).
4. Per target, Gaussians are fitted to its "in" and "out" features; the audited model's feature
   for that target is scored by the log likelihood ratio (:func:`lira_scores`). A target that is
   naturally isolated (far from everything) is judged against its own "out" distances, which
   the global distance attack cannot do. With few shadows the per-target variances are
   unreliable, so (as LiRA advises below 64 shadows) one variance is pooled over the targets.

The scores go through :func:`core.metrics.attack_stats.attack_stats` like every other attack of
the battery (AUROC with a DeLong interval, TPR at 0.1/1/10% FPR, the epsilon lower bound).
Training the shadows is the expensive part: ``python -m core.audit shadow`` does it offline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError
from core.metrics.attack_stats import AttackStats, attack_stats
from core.metrics.distances import nearest_distances

# Distances are floored before the log: an exact copy (distance 0) would give -inf.
DISTANCE_FLOOR = 1e-6


def inclusion_plan(targets: int, shadows: int, seed: int) -> np.ndarray:
    """``[shadows, targets]`` booleans: which targets each shadow trains on. Every target is in
    exactly half of the shadows, chosen at random. ``shadows`` must be even and at least 4: with
    one "in" and one "out" model per target no spread around either can be estimated."""
    if shadows < 4 or shadows % 2:
        raise ConfigError(f"the shadow attack needs an even number of shadows >= 4, got {shadows}")
    if targets < 1:
        raise ConfigError(f"the shadow attack needs at least one target, got {targets}")
    rng = np.random.default_rng(seed)
    plan = np.zeros((shadows, targets), dtype=bool)
    for t in range(targets):
        plan[rng.permutation(shadows)[: shadows // 2], t] = True
    return plan


def shadow_training_rows(
    plan_row: np.ndarray, target_rows: np.ndarray, pool_rows: np.ndarray, size: int, seed: int
) -> np.ndarray:
    """The population rows one shadow trains on: its included targets, filled up to ``size`` with
    a random draw from ``pool_rows`` (population records that are never targets)."""
    included = np.asarray(target_rows)[np.asarray(plan_row, dtype=bool)]
    fill = size - len(included)
    if fill < 0 or fill > len(pool_rows):
        raise ConfigError(
            f"a shadow of {size} records cannot hold {len(included)} targets from a pool of "
            f"{len(pool_rows)} others"
        )
    rng = np.random.default_rng(seed)
    return np.sort(np.r_[included, rng.choice(pool_rows, fill, replace=False)])


def target_features(targets: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Each target's log L1 distance to its nearest synthetic record (encoded vectors)."""
    d = nearest_distances(targets, synthetic)[:, 0]
    return np.log(np.maximum(d, DISTANCE_FLOOR))


def lira_scores(features: np.ndarray, plan: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per-target log likelihood ratio of ``observed`` (the audited model's features) under the
    target's "in" Gaussian against its "out" one. ``features`` and ``plan`` are
    ``[shadows, targets]``; higher scores mean "more likely a member"."""
    f = np.asarray(features, dtype=np.float64)
    inc = np.asarray(plan, dtype=bool)
    obs = np.asarray(observed, dtype=np.float64).ravel()
    if f.shape != inc.shape or f.shape[1] != len(obs):
        raise ConfigError(
            f"features {f.shape}, plan {inc.shape} and {len(obs)} observed targets disagree"
        )
    if not (inc.any(axis=0) & (~inc).any(axis=0)).all():
        raise ConfigError("every target needs at least one shadow with it and one without it")
    n_in, n_out = inc.sum(axis=0), (~inc).sum(axis=0)
    mu_in = np.where(inc, f, 0.0).sum(axis=0) / n_in
    mu_out = np.where(~inc, f, 0.0).sum(axis=0) / n_out
    # One variance, pooled over targets and both sides (deviations from each target's own "in"
    # or "out" mean): with a handful of shadows, separate variances per side would differ by
    # chance and tilt the score for every target whose distances vary more than average.
    residual = np.where(inc, f - mu_in, f - mu_out)
    var = max(float(np.sum(residual**2)) / max(f.size - 2 * len(obs), 1), 1e-12)
    return ((obs - mu_out) ** 2 - (obs - mu_in) ** 2) / (2 * var)


@dataclass(frozen=True)
class ShadowAttack:
    stats: AttackStats
    shadows: int
    targets: int
    members: int

    def details(self) -> dict:
        return self.stats.details() | {
            "shadows": self.shadows,
            "targets": self.targets,
            "members": self.members,
        }


def shadow_attack(
    features: np.ndarray, plan: np.ndarray, observed: np.ndarray, is_member: np.ndarray
) -> ShadowAttack:
    """The attack's statistics on the audited model: targets it trained on (``is_member``)
    against targets it did not."""
    scores = lira_scores(features, plan, observed)
    member = np.asarray(is_member, dtype=bool).ravel()
    if len(member) != len(scores):
        raise ConfigError(f"{len(member)} membership flags for {len(scores)} targets")
    return ShadowAttack(
        stats=attack_stats(scores[member], scores[~member]),
        shadows=int(plan.shape[0]),
        targets=int(plan.shape[1]),
        members=int(member.sum()),
    )
