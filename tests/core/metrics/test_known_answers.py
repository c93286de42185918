"""Known-answer tests: identical data scores ideal, a copy of the training set is flagged as a
leak, an independent draw from the same distribution scores near chance, disjoint data scores worst."""

import numpy as np
import pandas as pd
import pytest

from core.metrics import fidelity, mmd, privacy, utility

D = 60
P = np.linspace(0.1, 0.6, D)


def draw(n, p=P, seed=0, label_weight=None):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, len(p))) < p).astype(np.float32)
    return x


def labelled(n, seed):
    rng = np.random.default_rng(seed)
    x = draw(n, seed=seed)
    logits = 3 * (x[:, :5].sum(1) - 1.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(int)
    return x, y


@pytest.fixture(scope="module")
def sets():
    train, holdout = draw(600, seed=1), draw(600, seed=2)
    return {
        "train": train,
        "holdout": holdout,
        "copy": train.copy(),
        "independent": draw(600, seed=3),
        "disjoint": draw(600, p=P[::-1] * 0 + 0.95, seed=4),
    }


def test_dimension_wise_probability(sets):
    assert fidelity.dimension_wise_probability(sets["train"], sets["train"]).value == 1.0
    assert fidelity.dimension_wise_probability(sets["train"], sets["independent"]).value > 0.9
    assert fidelity.dimension_wise_probability(sets["train"], sets["disjoint"]).value < 0


def test_mmd_identical_independent_disjoint(sets):
    same = mmd.mmd(sets["train"], sets["train"])
    indep = mmd.mmd(sets["train"], sets["independent"])
    far = mmd.mmd(sets["train"], sets["disjoint"])
    # The unbiased estimate on identical sets is -(2/m)(1 - mean off-diagonal kernel) <= 0.
    assert -2 / 600 <= same.value <= 0
    assert abs(indep.value) < 5e-3 and far.value > 20 * max(abs(indep.value), 1e-4)
    assert indep.details["bandwidth"] > 0 and indep.details["exact"]


def test_mmd_blocks_and_subsample_agree(sets):
    full = mmd.mmd(sets["train"], sets["disjoint"], bandwidth=3.0)
    blocked = mmd.mmd(sets["train"], sets["disjoint"], bandwidth=3.0, block=97)
    assert blocked.value == pytest.approx(full.value, rel=1e-4)
    sub = mmd.mmd(sets["train"], sets["disjoint"], bandwidth=3.0, max_records=300)
    assert sub.details["subsample"] == 300 and not sub.details["exact"]
    assert sub.value == pytest.approx(full.value, rel=0.2)


def test_mmd_block_estimator_covers_the_exact_value_and_is_stated():
    """Above ``exact_up_to`` the block estimator: its 95% interval holds the exact all-pairs value
    (18 or more of 20 draws, independent and shifted alike), and the result says how it was
    computed."""
    shifted = P.copy()
    shifted[:6] += 0.2  # a small difference the exact MMD sees
    covered = {"same distribution": 0, "shifted": 0}
    for seed in range(20):
        real = draw(800, seed=100 + seed)
        for case, p in (("same distribution", P), ("shifted", shifted)):
            synth = draw(800, p=p, seed=200 + seed)
            exact = mmd.mmd(real, synth, bandwidth=3.0)
            blocks = mmd.mmd(real, synth, bandwidth=3.0, exact_up_to=500, block_records=100)
            low, high = blocks.ci
            covered[case] += low <= exact.value <= high
    assert blocks.details["blocks"] == 10 and not blocks.details["exact"]
    assert "block estimator: 10 blocks of about 80 + 80 records" == blocks.details["estimator"]
    assert exact.details["exact"] and exact.ci is None
    assert covered["same distribution"] >= 18 and covered["shifted"] >= 18, covered
    assert blocks.ci[0] > 0  # the shift is found by the blocks too


def test_correlation_difference(sets):
    assert fidelity.correlation_difference(sets["train"], sets["train"]).value == 0.0
    corr_data = draw(600, seed=5)
    corr_data[:, 1] = corr_data[:, 0]  # a strong correlation the reference lacks
    assert fidelity.correlation_difference(sets["train"], corr_data).details["max"] > 0.8


def test_numeric_marginals_and_missingness():
    rng = np.random.default_rng(0)
    real = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(5, 2, 500)})
    real.loc[:99, "b"] = np.nan
    same = fidelity.numeric_marginals(real, real, ["a", "b"])
    shifted = fidelity.numeric_marginals(real, real + 3, ["a", "b"])
    assert same.value == 0.0 and shifted.value > 0.5 and shifted.value <= 1.0
    assert fidelity.missingness_agreement(real, real, ["a", "b"]).value == 0.0
    assert fidelity.missingness_agreement(real, real.fillna(0), ["a", "b"]).value == pytest.approx(
        0.1
    )


def test_codes_per_record():
    counts = np.array([1, 2, 3, 3, 4])
    assert fidelity.codes_per_record(counts, counts).value == 0.0
    assert fidelity.codes_per_record(counts, counts + 2).value == pytest.approx(2.0)


def test_dimension_wise_prediction(sets):
    same = fidelity.dimension_wise_prediction(sets["train"], sets["train"], sets["holdout"])
    assert same.value == 1.0 and same.details["features_evaluated"] == D
    # Dimension 1 copies dimension 0 in the real data: only a model trained on data with that
    # correlation predicts it (AUROC ~1); an independent draw cannot (AUROC ~0.5).
    real, hold = sets["train"].copy(), sets["holdout"].copy()
    real[:, 1], hold[:, 1] = real[:, 0], hold[:, 0]
    res = fidelity.dimension_wise_prediction(real, sets["independent"], hold)
    row = res.per_feature.set_index("feature").loc["dim 1"]
    assert row["auroc_real"] > 0.99 and abs(row["auroc_synthetic"] - 0.5) < 0.1


def test_column_auroc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    truth = (rng.random((300, 4)) < 0.3).astype(float)
    scores = rng.normal(size=(300, 4)) + truth
    scores[:, 3] = np.round(scores[:, 3])  # ties
    expected = [roc_auc_score(truth[:, j], scores[:, j]) for j in range(4)]
    np.testing.assert_allclose(fidelity._column_auroc(truth, scores), expected)


def test_membership_inference_flags_a_copy_and_not_an_independent_draw(sets):
    leak = privacy.membership_inference(sets["train"], sets["holdout"], sets["copy"])
    fair = privacy.membership_inference(sets["train"], sets["holdout"], sets["independent"])
    assert leak.value > 0.95 and leak.details["auroc"] > 0.95 and leak.details["advantage"] > 0.9
    assert 0.5 <= fair.value < 0.6 and abs(fair.details["auroc"] - 0.5) < 0.06
    assert fair.details["advantage"] < 0.15


def test_dcr_exact_copies_and_nndr(sets):
    leak = privacy.distance_to_closest_record(sets["train"], sets["holdout"], sets["copy"])
    fair = privacy.distance_to_closest_record(sets["train"], sets["holdout"], sets["independent"])
    assert leak.value > 0.95 and abs(fair.value - 0.5) < 0.07
    assert privacy.exact_copies(sets["train"], sets["holdout"], sets["copy"]).value == 1.0
    fair_copies = privacy.exact_copies(sets["train"], sets["holdout"], sets["independent"])
    assert fair_copies.value == 0.0 and fair_copies.details["holdout_baseline"] == 0.0
    assert (
        privacy.nearest_neighbour_distance_ratio(sets["train"], sets["holdout"], sets["copy"]).value
        == 0.0
    )
    nndr = privacy.nearest_neighbour_distance_ratio(
        sets["train"], sets["holdout"], sets["independent"]
    )
    assert abs(nndr.value - nndr.ideal) < 0.05


def test_attribute_inference(sets):
    known, sensitive = np.arange(0, 40), np.arange(40, 60)
    leak = privacy.attribute_inference(
        sets["train"], sets["holdout"], sets["copy"], known=known, sensitive=sensitive
    )
    fair = privacy.attribute_inference(
        sets["train"], sets["holdout"], sets["independent"], known=known, sensitive=sensitive
    )
    assert leak.value > 0.3 and leak.details["f1_members"] == 1.0
    assert abs(fair.value) < 0.08


def test_tstr_copy_matches_trtr_and_random_labels_are_chance():
    train, holdout = labelled(800, 1), labelled(800, 2)
    rng = np.random.default_rng(9)
    same = utility.tstr(train, train, holdout, n_boot=50)
    noise = utility.tstr(
        train,
        (train[0], rng.integers(0, 2, 800)),
        holdout,
        classifiers=("logistic_regression",),
        n_boot=50,
    )
    for r in same:
        # A parallel random forest sums tree votes in thread order: equal to ~1e-5, not bitwise.
        assert r.value == pytest.approx(r.ideal, abs=1e-4) and r.ci[0] <= r.value <= r.ci[1]
    auroc = next(r for r in noise if "AUROC" in r.name)
    assert abs(auroc.value - 0.5) < 0.1 and auroc.ideal > 0.75


@pytest.mark.parametrize("name", ["membership", "dcr"])
def test_values_stay_in_stated_ranges(sets, name):
    fn = {"membership": privacy.membership_inference, "dcr": privacy.distance_to_closest_record}[
        name
    ]
    for synth in (sets["copy"], sets["independent"], sets["disjoint"]):
        r = fn(sets["train"], sets["holdout"], synth)
        assert r.lower_bound <= r.value <= r.upper_bound


def test_patient_exposure_ranks_the_copied_patients_first():
    from core.metrics.exposure import patient_exposure

    rng = np.random.default_rng(0)
    train, holdout = rng.random((300, 8)), rng.random((300, 8))
    synth = rng.random((300, 8))
    synth[:5] = train[[10, 20, 30, 40, 50]]  # five training patients copied
    exposed = patient_exposure(train, holdout, synth)
    assert set(exposed["train_row"][:5]) == {10, 20, 30, 40, 50}
    assert (exposed["nearest_distance"][:5] == 0).all()
    assert exposed["holdout_p"][0] <= 1 / 301 + 1e-12  # no holdout patient is that close
    # Nobody copied: the p-values are roughly uniform (few below 0.05).
    calm = patient_exposure(train, holdout, rng.random((300, 8)))
    assert (calm["holdout_p"] < 0.05).mean() < 0.12


def test_privacy_filter_drops_the_copies_and_keeps_the_rest():
    from core.metrics.privacy import privacy_filter

    rng = np.random.default_rng(1)
    train, holdout, synth = rng.random((400, 6)), rng.random((400, 6)), rng.random((400, 6))
    synth[:20] = train[:20]
    keep, radius = privacy_filter(train, holdout, synth)
    assert not keep[:20].any() and radius > 0
    assert keep[20:].mean() > 0.95  # fresh records are rarely that close


def test_tstr_fits_on_a_stated_stratified_subsample_that_agrees_with_the_whole():
    train, synth, holdout = labelled(2400, 11), labelled(2400, 12), labelled(1200, 13)
    whole = utility.tstr(train, synth, holdout, classifiers=("logistic_regression",), n_boot=100)
    capped = utility.tstr(
        train,
        synth,
        holdout,
        classifiers=("logistic_regression",),
        n_boot=100,
        max_training_records=800,
    )
    for w, c in zip(whole, capped, strict=True):
        assert w.details["synthetic_training_records"] == "2,400 of 2,400"
        assert c.details["synthetic_training_records"] == "799 of 2,400"  # each label its share
        assert c.details["real_training_records"] == "799 of 2,400"
        assert w.ci[0] <= c.value <= w.ci[1] and c.ci[0] <= w.value <= c.ci[1]
    x, y = utility.stratified_cap(*synth, 800, seed=0)
    assert abs(y.mean() - synth[1].mean()) < 2 / 800 and len({*map(bytes, x)}) == len(x)
