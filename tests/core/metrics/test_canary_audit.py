"""The one-run canary audit (Steinke, Nasr & Jagielski 2023): its bound by hand, and its two
known answers (canaries the model trained on many times give a high bound, canaries it never saw
give about 0), at unit level and on a toy EHRDiff model."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from core.data.cohort import CodeMatrix
from core.data.records import EHRTable
from core.errors import ConfigError
from core.metrics.canary_audit import audit, audit_over, canary_coins, epsilon_lower_bound
from core.metrics.distances import nearest_distances


def test_the_bound_is_where_the_binomial_tail_reaches_five_percent():
    for correct, guesses in ((100, 100), (45, 50), (70, 100)):
        eps = epsilon_lower_bound(correct, guesses)
        p = math.exp(eps) / (1 + math.exp(eps))
        assert stats.binom.sf(correct - 1, guesses, p) == pytest.approx(0.05, rel=1e-6)
    # all 100 right: p* = 0.05^(1/100)
    p = 0.05 ** (1 / 100)
    assert epsilon_lower_bound(100, 100) == pytest.approx(math.log(p / (1 - p)))
    assert epsilon_lower_bound(55, 100) == 0.0  # 55 of 100 is not unlikely for a coin
    assert epsilon_lower_bound(0, 10) == 0.0
    with pytest.raises(ConfigError, match="between 0 and 10"):
        epsilon_lower_bound(11, 10)


def test_scores_that_separate_the_coins_give_a_high_bound_and_independent_ones_about_zero():
    coins = canary_coins(1000, seed=0)
    assert 400 < coins.sum() < 600 and np.array_equal(coins, canary_coins(1000, seed=0))
    perfect = audit(coins, coins.astype(float), k_plus=100, k_minus=100)
    assert perfect.correct == 200 and perfect.epsilon_lower_bound > 3
    rng = np.random.default_rng(1)
    claims = [audit(coins, rng.normal(size=1000), 100, 100).epsilon_lower_bound for _ in range(50)]
    assert max(claims) < 0.5 and np.mean(np.array(claims) > 0) <= 0.1


def test_choosing_the_number_of_guesses_after_the_fact_is_paid_for():
    coins = canary_coins(400, seed=2)
    scores = coins + np.random.default_rng(3).normal(0, 0.8, 400)
    grid = ((10, 0), (20, 20), (50, 50))
    best = audit_over(coins, scores, grid)
    each = [audit(coins, scores, kp, km, confidence=1 - 0.05 / 3) for kp, km in grid]
    assert best.epsilon_lower_bound == max(a.epsilon_lower_bound for a in each)
    assert best.confidence == 0.95
    with pytest.raises(ConfigError, match="at most 400"):
        audit(coins, scores, 300, 200)
    with pytest.raises(ConfigError, match="coins but"):
        audit(coins[:10], scores, 1)


# --- on a toy EHRDiff model ------------------------------------------------------------------


def _table(x: np.ndarray) -> EHRTable:
    vocab = tuple(f"c{j}" for j in range(x.shape[1]))
    ids = np.array([f"r{i}" for i in range(len(x))], dtype=object)
    return EHRTable(
        ids, None, (), CodeMatrix(sp.csr_array(x.astype(np.uint8)), vocab, "toy", "full"), None
    )


def _audit_toy(duplicates: int, seed: int = 0) -> tuple:
    """Train a toy EHRDiff on 800 sparse records plus each coin-included canary repeated
    ``duplicates`` times (0: no canary trained on); score each canary by how close the nearest of
    1,000 synthetic records comes."""
    from core.ehrdiff.pipeline import GenerationSettings
    from core.ehrdiff.train import TrainConfig, train_ehrdiff

    rng = np.random.default_rng(seed)
    d, m = 24, 40
    base = (rng.random((800, d)) < 0.08).astype(np.float32)
    canaries = (rng.random((m, d)) < 0.5).astype(np.float32)  # dense: unlike any real record
    coins = canary_coins(m, seed)
    rows = [base] + ([np.repeat(canaries[coins], duplicates, axis=0)] if duplicates else [])
    x = np.concatenate(rows)
    config = TrainConfig(
        units=(64, 64), embed_dim=32, steps=500, batch_size=128, lr=3e-3, warmup=50,
        ema_decay=0.99, seed=seed,
    )  # fmt: skip
    model = train_ehrdiff(_table(x), config, model_id="canaries", device="cpu").model
    synth = model.generate_vectors(GenerationSettings(n=1000, seed=seed, steps=12))[0]
    scores = -nearest_distances(canaries, np.round(synth))[:, 0]
    return audit(coins, scores, k_plus=10, k_minus=10), coins


@pytest.mark.slow
def test_canaries_duplicated_in_training_give_a_high_bound_and_unseen_ones_about_zero():
    seen, coins = _audit_toy(duplicates=15)
    assert seen.correct >= 19 and seen.epsilon_lower_bound > 1.0
    unseen, _ = _audit_toy(duplicates=0)
    assert unseen.epsilon_lower_bound < 0.5
