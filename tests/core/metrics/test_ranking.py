"""The weighted AUROC and average precision equal scikit-learn's on every bootstrap resample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from core.metrics import detection
from core.metrics.bootstrap import record_resamples
from core.metrics.ranking import Ranking, auroc


@pytest.fixture(scope="module")
def tied():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    return y, np.round(rng.normal(size=300) + y, 1)  # many ties


def test_both_statistics_match_sklearn_on_the_records_and_on_each_resample(tied):
    y, scores = tied
    rank = Ranking.of(y, scores)
    assert auroc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert rank.average_precision() == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    resamples = list(record_resamples(len(y), 50, seed=3))
    got_auc = rank.over_resamples("auroc", resamples)
    got_ap = rank.over_resamples("average_precision", resamples)
    want_auc = [roc_auc_score(y[i], scores[i]) for i in resamples]
    want_ap = [average_precision_score(y[i], scores[i]) for i in resamples]
    np.testing.assert_allclose(got_auc, want_auc, atol=1e-12)
    np.testing.assert_allclose(got_ap, want_ap, atol=1e-12)


def test_a_resample_with_one_class_is_undefined_not_a_number_that_looks_real():
    y, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    one_class = [np.array([0, 1, 0, 1])]
    assert np.isnan(Ranking.of(y, scores).over_resamples("auroc", one_class)).all()
    assert np.isnan(Ranking.of(y, scores).over_resamples("average_precision", one_class)).all()
    assert auroc(y, scores) == pytest.approx(0.75)  # 3 of 4 pairs ordered


def test_the_detection_interval_covers_its_auroc(tied):
    y, scores = tied
    lo, hi = detection.bootstrap_auroc_ci(y, scores, 200, 0)
    assert lo < auroc(y, scores) < hi and hi - lo < 0.15
