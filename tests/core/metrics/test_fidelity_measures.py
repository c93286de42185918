"""Known answers of the issue #33 measures: detection, alpha-precision / beta-recall /
authenticity, column-pair trends."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.errors import ConfigError
from core.metrics import detection, pair_trends, precision_recall


def gaussian(n, seed, shift=0.0, rho=0.8, d=6):
    """d columns; the first two correlated (rho), the rest independent."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 1] = rho * x[:, 0] + np.sqrt(1 - rho**2) * x[:, 1]
    return x + shift


NAMES = [f"col{j}" for j in range(6)]


@pytest.fixture(scope="module")
def real():
    return gaussian(400, 1), gaussian(400, 2)


def test_detection_independent_draw_is_near_chance_and_near_the_real_reference(real):
    train, holdout = real
    results = detection.detection(train, gaussian(400, 3), holdout, NAMES, n_boot=100)
    assert [r.id for r in results] == [
        "detection_auroc_logistic_regression",
        "detection_auroc_gradient_boosting",
    ]
    for r in results:
        assert r.ci[0] <= 0.5 + 0.03 and r.value < 0.62
        assert abs(r.value - r.details["real_vs_real_auroc"]) < 0.1
        assert r.ideal == r.details["real_vs_real_auroc"]
        assert r.details["records_per_class"] == 400 and r.details["folds"] == 3


def test_detection_shifted_column_is_found_and_named(real):
    train, holdout = real
    synth = gaussian(400, 3)
    synth[:, 4] += 1.5  # one column gives the set away
    for r in detection.detection(train, synth, holdout, NAMES, n_boot=50):
        assert r.value > 0.8 and r.ci[0] > 0.75
        assert r.per_feature["feature"].iloc[0] == "col4"
        assert r.per_feature["direction"].iloc[0] == "more in synthetic"
        assert r.details["detection_score"] < 0.4


def test_gradient_boosting_sees_a_broken_joint_that_logistic_regression_cannot(real):
    """Same marginals, one correlation reversed (rho 0.8 -> -0.8): the linear detector's score
    is a sum of per-feature terms and stays near chance; the boosted trees see the pair."""
    train, holdout = real
    synth = gaussian(400, 3, rho=-0.8)
    lr, gbm = detection.detection(train, synth, holdout, NAMES, n_boot=50)
    assert lr.value < 0.62
    assert gbm.value > 0.75 and gbm.ci[0] > lr.ci[1]
    assert set(gbm.per_feature["feature"].iloc[:2]) == {"col0", "col1"}


def test_detection_rejects_too_few_records_and_unequal_widths(real):
    train, holdout = real
    with pytest.raises(ConfigError, match="at least 6 synthetic"):
        detection.detection(train, train[:4], holdout)
    with pytest.raises(ConfigError, match="equal widths"):
        detection.detection(train, train[:, :3], holdout)


def test_precision_recall_authenticity_copy(real):
    train, holdout = real
    p, r, a = precision_recall.precision_recall_authenticity(train, train.copy(), holdout)
    assert p.value > 0.98 and r.value > 0.98
    assert a.value == 0.0
    assert p.details["embedding"].startswith("review [0, 1] encoding")


def test_precision_recall_authenticity_independent_draw_is_near_real_vs_real(real):
    train, holdout = real
    for res in precision_recall.precision_recall_authenticity(train, gaussian(400, 3), holdout):
        assert abs(res.value - res.details["real_vs_real"]) < 0.08, res.id
        assert res.ideal == res.details["real_vs_real"]
    _, _, a = precision_recall.precision_recall_authenticity(train, gaussian(400, 3), holdout)
    assert 0.35 < a.value < 0.65


def test_precision_and_recall_fall_for_a_collapsed_or_shifted_set(real):
    train, holdout = real
    shifted = precision_recall.precision_recall_authenticity(train, gaussian(400, 3, 2.0))
    assert shifted[0].value < 0.5
    collapsed = gaussian(400, 3) * 0.2  # every record near the centre: precise, no coverage
    p, r, _ = precision_recall.precision_recall_authenticity(train, collapsed, holdout)
    assert r.value < 0.3 and r.value < r.details["real_vs_real"] - 0.2
    assert p.details["curve"][-1] == 1.0  # all inside the full real support


def frame(x):
    out = pd.DataFrame(x[:, :4], columns=["a", "b", "c", "d"])
    out["unit"] = np.where(x[:, 4] > 0.3, "MICU", np.where(x[:, 0] > 0, "SICU", "CCU"))
    out["sex"] = (x[:, 5] > 0).astype(float)
    out.loc[np.abs(x[:, 3]) > 1.5, "c"] = np.nan  # missing depends on another column
    return out


KINDS = {
    "a": "numeric",
    "b": "numeric",
    "c": "numeric",
    "d": "numeric",
    "unit": "categorical",
    "sex": "binary",
}


def test_pair_trends_identical_is_one_and_matches_a_brute_force_count():
    real = frame(gaussian(500, 1))
    same = pair_trends.pair_trends(real, real.copy(), KINDS)
    assert same.value == pytest.approx(1.0)
    synth = frame(gaussian(500, 2))
    res = pair_trends.pair_trends(real, synth, KINDS)
    assert res.details["pairs"] == 15 and res.details["correlation_pairs"] == 6
    names = list(KINDS)
    levels = [pair_trends._levels(real[c].to_numpy(), synth[c].to_numpy(), KINDS[c] == "numeric")
              for c in names]  # fmt: skip
    tvd = pair_trends.contingency_tvd([lv[0] for lv in levels], [lv[1] for lv in levels])
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            p = pd.crosstab(levels[i][0], levels[j][0], normalize=True).stack()
            q = pd.crosstab(levels[i][1], levels[j][1], normalize=True).stack()
            idx = p.index.union(q.index)
            brute = 0.5 * np.abs(p.reindex(idx, fill_value=0) - q.reindex(idx, fill_value=0)).sum()
            assert tvd[i, j] == pytest.approx(brute, abs=1e-9)
    both = real[["a", "c"]].dropna()
    r, _ = pair_trends.pairwise_correlations(real[["a", "c"]].to_numpy())
    assert r[0, 1] == pytest.approx(np.corrcoef(both["a"], both["c"])[0, 1], abs=1e-9)


def test_pair_trends_finds_the_broken_correlation():
    real = frame(gaussian(800, 1))
    synth = frame(gaussian(800, 2, rho=0.0))  # a and b no longer move together
    res = pair_trends.pair_trends(real, synth, KINDS)
    worst = res.per_feature.iloc[0]
    assert {worst["column_1"], worst["column_2"]} == {"a", "b"}
    assert worst["score"] == pytest.approx(1 - abs(0.8 - 0) / 2, abs=0.06)
    assert set(res.details["heatmap"]["columns"][:2]) == {"a", "b"}
    assert res.value < pair_trends.pair_trends(real, frame(gaussian(800, 3)), KINDS).value


def test_pair_trends_codes_are_binary_columns():
    rng = np.random.default_rng(0)
    x = (rng.random((600, 5)) < 0.3).astype(np.uint8)
    x[:, 1] = x[:, 0]  # codes 0 and 1 always together in real records
    y = (rng.random((600, 5)) < 0.3).astype(np.uint8)
    res = pair_trends.pair_trends(
        None, None, {}, sp.csr_array(x), sp.csr_array(y), [f"code{j}" for j in range(5)]
    )
    assert res.details["contingency_pairs"] == 10
    assert res.details["worst_pair"] == "code0 x code1"
    with pytest.raises(ConfigError, match="at least two columns"):
        pair_trends.pair_trends(
            None, None, {}, sp.csr_array(x[:, :1]), sp.csr_array(y[:, :1]), ["c"]
        )


def test_the_gate_evidence_is_the_auroc_and_the_spread_of_its_interval(real):
    train, holdout = real
    synth = gaussian(400, 3)
    synth[:, 4] += 0.4
    r = detection.detection(train, synth, holdout, NAMES, detectors=("logistic_regression",))[0]
    assert r.evidence.estimate == r.value and r.ci[0] < r.value < r.ci[1]
    # the bootstrap SE and the percentile interval come from the same resamples
    assert r.evidence.se == pytest.approx((r.ci[1] - r.ci[0]) / (2 * 1.96), rel=0.3)


def test_float32_storage_noise_does_not_give_a_set_away():
    """Real values read as float32 and the same values decoded as float64 differ by 1e-8; the
    trees must not split on that."""
    rng = np.random.default_rng(0)
    grid = np.round(rng.choice(np.arange(1.0, 3.0, 0.1), size=(800, 3)), 1)
    real = (grid[:400].astype(np.float32).astype(np.float64) - 1.0) / 2.0
    holdout = (grid[400:600].astype(np.float32).astype(np.float64) - 1.0) / 2.0
    synth = (np.round(rng.choice(np.arange(1.0, 3.0, 0.1), size=(400, 3)), 1) - 1.0) / 2.0
    gbm = detection.detection(real, synth, holdout, detectors=("gradient_boosting",))[0]
    assert gbm.value < 0.6
