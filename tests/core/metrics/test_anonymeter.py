"""Anonymeter's risks: the Wilson rate against scipy, the mixed-type distance and predicates by
hand, and known answers (a copy of the training set is at high risk on all three attacks, an
independent draw from the same population is not)."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from core.data.cohort import FeatureSpec
from core.data.records import EHRTable
from core.metrics import anonymeter as am
from core.metrics.suite import Review, ReviewSettings, review
from core.release.gate import GateThresholds, evaluate_gate

UNITS = ("MICU", "SICU", "CCU")


def mixed(n: int, seed: int, prefix: str) -> EHRTable:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    age = np.clip(np.round(65 + 12 * z[:, 0]), 18, 100)
    hr = np.round(85 + 10 * z[:, 1] + 5 * rng.normal(size=n), 1)
    hr[rng.random(n) < 0.1] = np.nan
    static = pd.DataFrame(
        {
            "age": age,
            "heart_rate": hr,
            "weight": np.round(80 + 15 * rng.normal(size=n), 1),
            "sex": np.where(rng.random(n) < 0.45, "F", "M"),
            "unit": np.array(UNITS)[rng.integers(0, 3, n)],
        }
    )
    feats = (
        FeatureSpec("age", "numeric"),
        FeatureSpec("heart_rate", "numeric"),
        FeatureSpec("weight", "numeric"),
        FeatureSpec("sex", "categorical", categories=("F", "M")),
        FeatureSpec("unit", "categorical", categories=UNITS),
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-(age - 70) / 8))).astype(np.int64)
    ids = np.asarray([f"{prefix}{i}" for i in range(n)], dtype=object)
    return EHRTable(ids, static, feats, None, y, "label", ("survived", "died"))


@pytest.fixture(scope="module")
def real():
    return mixed(800, 0, "t"), mixed(800, 1, "h")


def test_success_rate_is_the_wilson_interval():
    for n, k in ((100, 50), (500, 3), (40, 40)):
        centre, half = am.success_rate(n, k, am.z_for(0.95))
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert centre - half == pytest.approx(ci.low, abs=1e-9)
        assert centre + half == pytest.approx(ci.high, abs=1e-9)


def test_residual_risk_is_zero_when_main_equals_control_and_one_when_all_main_succeed():
    same = {"n_main": 500, "success_main": 120, "n_control": 500, "success_control": 120}
    value, error = am.residual_risk(same, 1.96)
    assert value == pytest.approx(0.0) and 0 < error < 0.1
    full = {"n_main": 500, "success_main": 500, "n_control": 500, "success_control": 100}
    assert am.residual_risk(full, 1.96)[0] > 0.98


def test_gower_distance_by_hand():
    cat = np.array([False, False, True])
    candidates = np.array([[0.0, 0.5, 0], [0.1, np.nan, 1], [0.9, 0.5, 0]], np.float32)
    # query: 0.2, missing, category 1 -> distances 0.2 + 1 + 1, 0.1 + 0 + 0, 0.7 + 1 + 1
    assert am.gower_nearest(np.array([[0.2, np.nan, 1]], np.float32), candidates, cat, 3)[
        0
    ].tolist() == [1, 0, 2]
    # query: 0.8, 0.5, category 0 -> 0.8 + 0 + 0, 0.7 + 1 + 1, 0.1 + 0 + 0
    assert am.gower_nearest(np.array([[0.8, 0.5, 0]], np.float32), candidates, cat, 1)[0, 0] == 2


def test_predicates_count_matching_rows_by_hand():
    x = np.array([[1, 0.2], [2, 0.5], [2, np.nan], [3, 0.9]], np.float32)
    cols = np.array([[0, 1], [0, 1], [0, 1], [1, 0]])
    ops = np.array([[am.EQ, am.GE], [am.GE, am.NULL], [am.NE, am.LT], [am.LE, am.GT]])
    vals = np.array([[2, 0.3], [2, np.nan], [3, 0.6], [0.5, 1]], np.float32)
    # x0 = 2 and x1 >= 0.3: row 1; x0 >= 2 and x1 missing: row 2;
    # x0 != 3 and x1 < 0.6: rows 0, 1; x1 <= 0.5 and x0 > 1: row 1
    assert am._matches(x, cols, ops, vals).tolist() == [1, 1, 2, 1]


@pytest.mark.parametrize("attack", [am.singling_out, am.linkability, am.inference])
def test_a_copy_of_train_is_at_risk_and_an_independent_draw_is_not(real, attack):
    train, holdout = real
    leak = attack(am.attack_tables(train, holdout, train))
    safe = attack(am.attack_tables(train, holdout, mixed(800, 2, "s")))
    assert leak.ci[0] > 0.5, leak.details
    assert safe.ci[0] <= 0.05 and safe.value < 0.2, safe.details
    assert leak.details["attack_beats_baseline"]
    assert 0.0 <= safe.ci[0] <= safe.value <= safe.ci[1] <= 1.0


def test_univariate_singling_out_flags_a_copy(real):
    train, holdout = real
    leak = am.singling_out(am.attack_tables(train, holdout, train), mode="univariate")
    assert leak.details["mode"] == "univariate" and leak.ci[0] > 0.5


@pytest.mark.slow
def test_the_review_reports_the_three_risks_and_the_gate_checks_them_only_when_asked(real):
    train, holdout = real
    settings = ReviewSettings(bootstrap=20, mmd_max_records=400)
    leak = review("copy", train, holdout, train, settings=settings)
    assert {"anonymeter_singling_out", "anonymeter_linkability", "anonymeter_inference"} <= {
        r.id for r in leak.results
    }
    assert all("Anonymeter" not in c.name for c in evaluate_gate(leak).checks)
    asked = GateThresholds(singling_out=0.1, linkability=0.1, inference=0.1)
    checks = {c.name: c for c in evaluate_gate(leak, asked).checks}
    for name in ("singling-out", "linkability", "attribute-inference"):
        check = checks[f"Anonymeter {name} risk"]
        assert check.verdict == "fail" and check.ci[0] > 0.1


@pytest.mark.slow
def test_independent_draws_do_not_fail_the_anonymeter_checks(real):
    """Known answer: sets that never saw the training patients fail an Anonymeter check at
    threshold 0.05 in at most 1 of 12 draws (each check's interval has 98.75% coverage)."""
    train, holdout = real
    asked = GateThresholds(singling_out=0.05, linkability=0.05, inference=0.05)
    fails = 0
    for seed in range(12):
        tables = am.attack_tables(train, holdout, mixed(800, 10 + seed, "s"))
        rv_results = [am.singling_out(tables, seed=seed), am.linkability(tables, seed=seed)]
        rv_results.append(am.inference(tables, seed=seed))
        verdict = evaluate_gate(Review("indep", rv_results, {}, "", 800, None), asked)
        fails += any(c.verdict == "fail" for c in verdict.checks if "Anonymeter" in c.name)
    assert fails <= 1
