import numpy as np
import pytest

from core.errors import ConfigError
from core.metrics.fidelity import dimension_wise_probability, r2_against_identity


def test_identical_data_scores_one():
    x = (np.random.default_rng(0).random((500, 20)) < np.linspace(0.05, 0.9, 20)).astype(float)
    res = dimension_wise_probability(x, x)
    assert res.value == 1.0 and res.details["pearson_r"] == pytest.approx(1.0) and res.ideal == 1.0


def test_independent_draws_score_high_and_disjoint_score_low():
    rng = np.random.default_rng(1)
    p = np.linspace(0.05, 0.9, 30)
    a, b = (rng.random((4000, 30)) < p).astype(float), (rng.random((4000, 30)) < p).astype(float)
    assert dimension_wise_probability(a, b).value > 0.98
    flipped = (rng.random((4000, 30)) < p[::-1]).astype(float)
    assert dimension_wise_probability(a, flipped).value < 0


def test_r2_penalises_offsets_that_pearson_ignores():
    real = np.array([0.1, 0.2, 0.3, 0.4])
    res = r2_against_identity(real, real + 0.1)
    assert res == pytest.approx(0.2) and np.corrcoef(real, real + 0.1)[0, 1] == pytest.approx(1.0)


def test_shape_errors():
    with pytest.raises(ConfigError):
        dimension_wise_probability(np.zeros((3, 2)), np.zeros((3, 3)))
