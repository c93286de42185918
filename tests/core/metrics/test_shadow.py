"""The shadow-model attack's known answers with generators cheap enough to train 8 times in a
unit test: a memoriser (releases its training records plus small noise) is found, a generator
that never looks at its data is at chance, and the per-target score beats the global distance
attack when targets differ in how isolated they are."""

import numpy as np
import pytest

from core.errors import ConfigError
from core.metrics.shadow import (
    inclusion_plan,
    lira_scores,
    shadow_attack,
    shadow_training_rows,
    target_features,
)

N, DIM, TARGETS, SHADOWS = 600, 6, 80, 8


def _population(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((N, DIM))


def memoriser(noise: float):
    def generate(train: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.clip(train + rng.normal(0, noise, train.shape), 0, 1)

    return generate


def independent(train: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(train.shape)


def _attack(generate, seed: int = 0):
    """The audit in miniature: the audited model trains on the first half of the population."""
    x = _population(seed)
    rng = np.random.default_rng(seed)
    train_rows, holdout_rows = np.arange(N // 2), np.arange(N // 2, N)
    targets = np.r_[
        rng.choice(train_rows, TARGETS // 2, replace=False),
        rng.choice(holdout_rows, TARGETS // 2, replace=False),
    ]
    is_member = np.r_[np.ones(TARGETS // 2, bool), np.zeros(TARGETS // 2, bool)]
    pool = np.setdiff1d(np.arange(N), targets)
    plan = inclusion_plan(TARGETS, SHADOWS, seed)
    features = np.stack([
        target_features(
            x[targets],
            generate(x[shadow_training_rows(plan[k], targets, pool, N // 2, k)], 100 + k),
        )
        for k in range(SHADOWS)
    ])  # fmt: skip
    observed = target_features(x[targets], generate(x[train_rows], 7))
    return shadow_attack(features, plan, observed, is_member)


def test_every_target_is_in_exactly_half_of_the_shadows():
    plan = inclusion_plan(50, 8, seed=3)
    assert plan.shape == (8, 50) and (plan.sum(axis=0) == 4).all()
    assert not np.array_equal(plan, inclusion_plan(50, 8, seed=4))
    with pytest.raises(ConfigError, match="even number"):
        inclusion_plan(50, 3, seed=0)


def test_a_shadow_trains_on_its_targets_and_a_fill_from_the_pool():
    targets, pool = np.arange(10), np.arange(10, 100)
    plan_row = np.r_[np.ones(5, bool), np.zeros(5, bool)]
    rows = shadow_training_rows(plan_row, targets, pool, 40, seed=0)
    assert len(rows) == 40 and len(np.unique(rows)) == 40
    assert set(rows) & set(targets) == set(range(5))
    with pytest.raises(ConfigError, match="cannot hold"):
        shadow_training_rows(plan_row, targets, pool[:3], 40, seed=0)


def test_a_memoriser_is_found_and_an_independent_generator_is_at_chance():
    leaky = _attack(memoriser(0.01)).stats
    assert leaky.auroc > 0.95 and leaky.auroc_ci[0] > 0.9
    assert leaky.tpr_at(0.1).tpr > 0.8
    blind = _attack(independent).stats
    assert blind.auroc_ci[0] < 0.5 < blind.auroc_ci[1]
    assert blind.epsilon_lower_bound == 0.0


def test_the_per_target_calibration_finds_members_a_global_threshold_misses():
    """Targets differ in how far they sit from other records: a member's distance to a noisy copy
    of itself is small only relative to its own usual distance. The LiRA score compares each
    target with its own "out" shadows; the raw distance does not."""
    rng = np.random.default_rng(0)
    targets, shadows = 200, 16
    member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    isolation = rng.normal(0, 1.0, targets)  # each target's own log distance when "out"
    plan = inclusion_plan(targets, shadows, seed=1)
    shift = 0.4  # being trained on brings a target this much closer (log scale)
    features = isolation + rng.normal(0, 0.1, (shadows, targets)) - shift * plan
    observed = isolation + rng.normal(0, 0.1, targets) - shift * member
    lira = shadow_attack(features, plan, observed, member).stats.auroc
    from core.metrics.attack_stats import attack_stats

    raw = attack_stats(-observed[member], -observed[~member]).auroc
    assert lira > 0.95 and raw < 0.75


def test_the_score_refuses_mismatched_inputs():
    plan = inclusion_plan(4, 4, seed=0)
    with pytest.raises(ConfigError, match="disagree"):
        lira_scores(np.zeros((4, 4)), plan, np.zeros(3))
    with pytest.raises(ConfigError, match="at least one shadow with it"):
        lira_scores(np.zeros((4, 4)), np.ones((4, 4), bool), np.zeros(4))
    with pytest.raises(ConfigError, match=">= 4"):
        inclusion_plan(4, 2, seed=0)  # one "in" and one "out" model: no spread to estimate
