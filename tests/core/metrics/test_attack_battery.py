"""Known answers of the attack battery: the shared statistics (AUROC with a DeLong interval, TPR
at low FPR with Clopper-Pearson intervals, the epsilon lower bound) and each attack on a copy of
the training set, an independent draw and a planted leak."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from core.errors import ConfigError
from core.metrics import domias, privacy
from core.metrics.attack_stats import attack_stats, delong, epsilon_from, one_sided


def population(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mixed records in [0, 1]: 6 continuous and 6 binary columns driven by 3 latent factors."""
    z = rng.normal(size=(n, 3))
    cont = 1 / (1 + np.exp(-(z[:, [0, 0, 1, 1, 2, 2]] + 0.5 * rng.normal(size=(n, 6)))))
    binary = (z[:, [0, 1, 2, 0, 1, 2]] + rng.normal(size=(n, 6)) > 0.3).astype(float)
    return np.hstack([np.round(cont, 3), binary]).astype(np.float32)


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(7)
    train, holdout = population(1200, rng), population(600, rng)
    independent = population(1200, rng)
    k = len(train) // 10
    leaked = population(1200, rng)
    rows = rng.choice(len(train), k, replace=False)
    noise = rng.normal(0, 0.01, (k, 12)) * np.r_[np.ones(6), np.zeros(6)]  # no exact copy
    leaked[:k] = np.clip(train[rows] + noise, 0, 1)
    return {
        "train": train,
        "holdout": holdout,
        "copy": train.copy(),
        "independent": independent,
        "noised 10%": leaked,
    }


# --- the shared statistics -------------------------------------------------------------------


def test_delong_auroc_is_sklearns_and_its_interval_covers_chance_on_equal_scores():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(size=500)
    auc, se = delong(a, b)
    assert auc == pytest.approx(roc_auc_score(np.r_[np.ones(300), np.zeros(500)], np.r_[a, b]))
    # Hanley-McNeil variance at AUROC 0.5: (m + n + 1) / (12 m n)
    assert se == pytest.approx(math.sqrt((300 + 500 + 1) / (12 * 300 * 500)), rel=0.15)
    st = attack_stats(a, b)
    assert st.auroc_ci[0] < 0.5 < st.auroc_ci[1] and st.epsilon_lower_bound == 0.0


def test_tpr_at_fpr_counts_and_clopper_pearson_intervals_by_hand():
    members = np.arange(100, 200, dtype=float)  # 100 members, all above every non-member
    non_members = np.arange(0, 1000, dtype=float) / 10  # 1000 non-members in [0, 99.9]
    st = attack_stats(members, non_members)
    p = st.tpr_at(0.01)
    # threshold = 11th largest non-member: exactly 10 non-members above it
    assert p.false_positives == 10 and p.fpr == 0.01 and p.true_positives == 100
    ci = stats.binomtest(10, 1000).proportion_ci(0.95, method="exact")
    assert p.fpr_ci == pytest.approx((ci.low, ci.high))
    alpha = 0.05 / 6  # two one-sided bounds at each of three operating points
    assert p.tpr_lower == pytest.approx(alpha ** (1 / 100))  # k = n: lower bound alpha^(1/n)
    assert p.fpr_upper == pytest.approx(stats.beta.ppf(1 - alpha, 11, 990))
    # the epsilon bound uses the one-sided bounds, not the estimates
    assert st.epsilon_lower_bound == pytest.approx(
        max(epsilon_from(q.tpr_lower, q.fpr_upper, 1e-5) for q in st.points)
    )
    assert st.auroc == 1.0 and st.auroc_ci[1] == 1.0


def test_epsilon_by_hand_and_perfect_separation_gives_a_high_bound():
    assert epsilon_from(0.5, 0.05, 0.0) == pytest.approx(math.log(10))
    assert epsilon_from(0.99, 0.5, 0.0) == pytest.approx(math.log(0.5 / 0.01))
    assert epsilon_from(0.1, 0.2, 0.0) == 0.0
    st = attack_stats(np.full(2000, 1.0) + np.arange(2000) * 1e-6, np.zeros(2000))
    # all 2,000 members above all 2,000 non-members: at 0.1% FPR the bound is
    # log(TPR_lo / FPR_hi) with FPR_hi = 1 - alpha^(1/2000) ~ 0.0029
    lo, hi = one_sided(2000, 2000, 0.05 / 6)[0], one_sided(2, 2000, 0.05 / 6)[1]
    assert st.epsilon_lower_bound >= math.log(lo / hi) > 5


def test_epsilon_lower_bound_is_rarely_positive_without_a_signal():
    rng = np.random.default_rng(1)
    positive = sum(
        attack_stats(rng.normal(size=300), rng.normal(size=300)).epsilon_lower_bound > 0
        for _ in range(80)
    )
    # a 95% bound: at most ~5% false claims (Bonferroni: fewer); point estimates in place of
    # the one-sided bounds would claim eps > 0 about half the time
    assert positive <= 8


def test_roc_keeps_the_low_fpr_end_and_bad_scores_are_refused():
    rng = np.random.default_rng(2)
    st = attack_stats(rng.normal(1, 1, 5000), rng.normal(0, 1, 5000))
    fpr = np.asarray(st.roc_fpr)
    assert len(fpr) <= 600 and np.sum((fpr > 0) & (fpr <= 0.001)) >= 3
    with pytest.raises(ConfigError, match="finite"):
        attack_stats(np.array([0.1, np.nan]), np.array([0.0, 1.0]))
    with pytest.raises(ConfigError, match="at least two"):
        attack_stats(np.array([0.1]), np.array([0.0, 1.0]))


# --- each attack: copy flagged, independent at chance, planted leak found ---------------------

ATTACKS = {
    "distance": lambda t, h, s: privacy.membership_inference(t, h, s, seed=0),
    "domias": lambda t, h, s: domias.domias(t, h, s, seed=0),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_copy_of_the_training_set_is_flagged(split, attack):
    d = ATTACKS[attack](split["train"], split["holdout"], split["copy"]).details
    assert d["auroc"] > 0.95 and d["tpr_at_fpr"]["0.01"]["tpr"] > 0.5
    assert d["epsilon_lower_bound"] > 2


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_independent_draw_is_at_chance(split, attack):
    d = ATTACKS[attack](split["train"], split["holdout"], split["independent"]).details
    assert d["auroc_ci"][0] < 0.5 < d["auroc_ci"][1]
    assert d["epsilon_lower_bound"] == 0.0


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_planted_leak_of_noised_training_copies_is_found(split, attack):
    d = ATTACKS[attack](split["train"], split["holdout"], split["noised 10%"]).details
    # a 95% lower bound above 0: the synthetic set proves membership leaks
    assert d["epsilon_lower_bound"] > 0.5
    assert d["tpr_at_fpr"]["0.01"]["tpr_ci"][0] > 0.01


def test_distance_attack_keeps_the_fields_the_gate_reads(split):
    r = privacy.membership_inference(split["train"], split["holdout"], split["copy"])
    assert r.id == "mia_accuracy" and 0.5 <= r.value <= 1.0
    assert {"advantage", "null_advantage", "auroc", "n_members", "n_non_members"} <= set(r.details)
    # every training patient is a target (issue #30), not a holdout-sized subsample
    assert r.details["n_members"] == 1200 and r.details["n_non_members"] == 600


def test_domias_scores_every_member_and_never_with_its_own_record(split):
    r = domias.domias(split["train"], split["holdout"], split["independent"], seed=3)
    d = r.details
    assert r.id == "domias_auroc" and r.value == d["auroc"] and r.ci == d["auroc_ci"]
    assert d["n_members"] == 1200 and d["n_non_members"] == 600 and d["reference_size"] == 300
    assert d["bandwidth_synthetic"] < d["bandwidth_reference"]
    capped = domias.domias(split["train"], split["holdout"], split["copy"], max_records=500)
    assert capped.details["n_members"] == 500 and capped.details["members_from"] == 1200


def test_domias_refuses_what_it_cannot_attack(split):
    with pytest.raises(ConfigError, match="10 holdout"):
        domias.domias(split["train"], split["holdout"][:6], split["independent"])
    with pytest.raises(ConfigError, match="no variance"):
        domias.domias(split["train"], split["holdout"], np.zeros((50, 12), np.float32))
    with pytest.raises(ConfigError, match="bandwidth"):
        domias.domias(split["train"], split["holdout"], split["copy"], bandwidth_factor=0)
