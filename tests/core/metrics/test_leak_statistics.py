"""Known answers of the gate's leak statistics: the low-FPR advantage (ties included), its
standard-error bound and null, and the equal-weight DCR share with every training patient."""

import numpy as np
import pytest

from core.metrics.distances import nearest
from core.metrics.leak_statistics import (
    advantage_se,
    balanced_dcr,
    low_fpr_advantage,
    low_fpr_null,
    null_summary,
)


def test_low_fpr_advantage_finds_the_copied_members():
    rng = np.random.default_rng(0)
    members = np.r_[np.ones(3000, bool), np.zeros(1000, bool)]
    d = rng.random(4000) + 0.01
    d[:300] = 0.0  # 10% of the members have a synthetic copy
    assert low_fpr_advantage(d, members) == pytest.approx(0.1, abs=0.02)


def test_a_tie_larger_than_the_fpr_limit_cannot_hide_a_leak():
    # half the members and 20% of the non-members at distance 0 (identical code sets): no
    # threshold flags at most 10% of non-members, but an attacker flagging half of the tie does
    members = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    d = np.ones(200)
    d[:50] = 0.0
    d[100:120] = 0.0
    assert low_fpr_advantage(d, members) == pytest.approx(0.25 - 0.1)
    assert low_fpr_advantage(np.ones(200), members) == 0.0  # one tie: nothing to tell


def test_the_null_of_exchangeable_patients_sits_below_the_standard_error_bound():
    rng = np.random.default_rng(1)
    members = np.r_[np.ones(3200, bool), np.zeros(800, bool)]
    d = rng.random(4000)
    null = low_fpr_null(d, members, permutations=200)
    summary = null_summary(null, low_fpr_advantage(d, members))
    se = advantage_se(3200, 800)
    assert se == pytest.approx(np.sqrt(0.25 / 3200 + 0.09 / 800))
    assert 0.0 < summary.mean < se  # the best-threshold bias at low FPR is small
    assert summary.quantile(0.95) < 3 * se and 0 < summary.p_value <= 1


def test_dcr_share_is_half_for_a_fresh_draw_and_one_for_copies():
    rng = np.random.default_rng(2)
    train, holdout = rng.random((1600, 6)), rng.random((400, 6))

    def share(synth):
        d_tr, i_tr = (a[:, 0] for a in nearest(synth, train))
        d_ho, i_ho = (a[:, 0] for a in nearest(synth, holdout))
        return balanced_dcr(d_tr, d_ho, i_tr, i_ho, len(train), len(holdout))

    fair, fair_se = share(rng.random((1600, 6)))
    assert 0 < fair_se < 0.05 and abs(fair - 0.5) < 3 * fair_se
    copied, _ = share(train.copy())
    assert copied == 1.0
