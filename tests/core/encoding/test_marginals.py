"""Known answers for per-column marginals: support, precision, the quantile map, pile-ups."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri

from core.data.cohort import FeatureSpec
from core.data.records import EHRTable
from core.encoding.marginals import MIN_SUPPORT_COUNT, Marginal
from core.encoding.vectors import VectorEncoding
from core.metrics.fidelity import column_fidelity, numeric_marginals


def gcs_like(n: int = 3000, seed: int = 0) -> np.ndarray:
    """Integers 3..15 with most mass on 15, plus one rare value (4) held by 3 records."""
    rng = np.random.default_rng(seed)
    values = rng.choice([3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], size=n - 3)
    values[: n // 2] = 15
    return np.r_[values, [4, 4, 4]].astype(float)


def table_of(**columns: np.ndarray) -> EHRTable:
    frame = pd.DataFrame(columns)
    specs = tuple(FeatureSpec(name, "numeric") for name in columns)
    return EHRTable(np.arange(len(frame)).astype(str), frame, specs, None)


def test_integer_column_decodes_to_integers_in_its_support():
    table = table_of(GCS=gcs_like())
    for space in ("quantile", "scaled"):
        enc = VectorEncoding.fit(table, space)
        codec = enc.columns[0]
        assert codec.marginal.discrete
        support = set(codec.marginal.support)
        assert support == {3.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0}
        # Any model output, including overshoot beyond [0, 1], lands on the support.
        x = np.random.default_rng(1).uniform(-0.2, 1.2, (5000, enc.dim)).astype(np.float32)
        decoded = enc.decode(x, np.arange(5000).astype(str)).static["GCS"].to_numpy()
        assert set(np.unique(decoded)) <= support
        assert np.all(decoded == np.round(decoded))


def test_a_rare_value_is_never_stored_in_the_manifest():
    values = gcs_like()
    assert (values == 4).sum() < MIN_SUPPORT_COUNT
    enc = VectorEncoding.fit(table_of(GCS=values), "quantile")
    stored = json.loads(json.dumps(enc.to_json()))["columns"][0]["marginal"]
    assert 4.0 not in stored["support"] and 4.0 not in stored["knots"]
    # Its records count towards the nearest kept value (3 or 5), not towards a new one.
    m = enc.columns[0].marginal
    share_of = dict(zip(m.support, np.diff(np.r_[0.0, m.cdf]), strict=True))
    real_3_or_5 = np.isin(values, [3, 4, 5]).mean()
    assert share_of[3.0] + share_of[5.0] == pytest.approx(real_3_or_5, abs=1e-9)


def test_quantile_map_reproduces_discrete_shares_and_round_trips():
    values = gcs_like()
    m = VectorEncoding.fit(table_of(GCS=values), "quantile").columns[0].marginal
    u = m.to_unit(values, np.random.default_rng(0))
    # Ties are spread over their CDF interval: the model sees a uniform marginal, not spikes.
    counts, _ = np.histogram(u, bins=10, range=(0, 1))
    assert counts.min() > 0.8 * len(values) / 10
    np.testing.assert_array_equal(m.from_unit(m.to_unit(values[values != 4])), values[values != 4])
    drawn = m.from_unit(np.random.default_rng(2).random(200_000))
    assert np.mean(drawn == 15) == pytest.approx(np.mean(values == 15), abs=0.005)


def test_continuous_column_keeps_its_precision_and_does_not_pile_up_at_the_bound():
    rng = np.random.default_rng(0)
    # A lab with a detection limit: 10% of records sit at 0.01, the rest log-normal, 2 decimals.
    values = np.r_[np.full(400, 0.01), rng.lognormal(-2, 1, 3600)].round(2)
    values = np.maximum(values, 0.01)
    enc = VectorEncoding.fit(table_of(Trop=values), "quantile")
    m = enc.columns[0].marginal
    assert not m.discrete and m.decimals == 2
    at_limit = np.mean(values == m.lo)
    # A model whose output overshoots [0, 1] by 5% on both sides.
    u = rng.uniform(-0.05, 1.05, 100_000)
    decoded = m.from_unit(u)
    assert np.all(np.abs(decoded * 100 - np.round(decoded * 100)) < 1e-6)
    # The bound holds the real share at the limit plus the overshoot below 0, nothing more.
    assert np.mean(decoded == m.lo) == pytest.approx(at_limit + 0.05 / 1.1, abs=0.01)


def test_manifest_round_trip_and_older_manifests_without_marginals():
    table = table_of(GCS=gcs_like(), Trop=np.random.default_rng(0).lognormal(0, 1, 3000).round(1))
    enc = VectorEncoding.fit(table, "quantile")
    again = VectorEncoding.from_json(json.loads(json.dumps(enc.to_json())))
    assert again == enc
    old = enc.to_json()
    for c in old["columns"]:
        c.pop("marginal"), c.pop("space")
    legacy = VectorEncoding.from_json(old)
    assert all(c.marginal is None and c.space == "scaled" for c in legacy.columns)
    x = np.full((1, legacy.dim), 0.5, np.float32)
    assert legacy.decode(x, np.array(["a"])).static["GCS"].iloc[0] == pytest.approx(
        (legacy.columns[0].lo + legacy.columns[0].hi) / 2
    )


def test_column_fidelity_known_answers():
    real = pd.DataFrame({"GCS": [3.0, 15.0] * 50, "Sex": ["F", "M", "M", "M"] * 25})
    synth = pd.DataFrame({"GCS": [3.0, 15.0, 11.37, 15.0] * 25, "Sex": ["F", "F", "M", "M"] * 25})
    res = column_fidelity(
        real, synth, [("GCS", "numeric"), ("Sex", "categorical")], {"GCS": (True, 0)}
    )
    rows = res.per_feature.set_index("feature")
    assert rows.loc["GCS", "off_support"] == pytest.approx(0.25)
    assert rows.loc["Sex", "distance"] == pytest.approx(0.25)  # TV of (1/4, 3/4) vs (1/2, 1/2)
    assert rows.loc["GCS", "spike_excess"] == pytest.approx(0.5 - 0.5)
    assert res.value == pytest.approx(max(rows["distance"]))
    assert list(res.per_feature["distance"]) == sorted(res.per_feature["distance"], reverse=True)
    same = column_fidelity(real, real, [("GCS", "numeric"), ("Sex", "categorical")])
    assert same.value == 0.0


def test_marginal_of_a_constant_or_empty_column():
    assert Marginal.fit(np.array([]), 0.0, 1.0).from_unit(np.array([0.5]))[0] == 0.5
    m = Marginal.fit(np.full(100, 7.0), 7.0, 7.0)
    assert m.from_unit(np.array([0.2, 0.9])).tolist() == [7.0, 7.0]


def test_normal_space_has_gaussian_scores_and_decodes_like_the_quantile_space():
    values = np.random.default_rng(0).lognormal(0, 1, 4000).round(1)
    table = table_of(Lab=values)
    normal = VectorEncoding.fit(table, "normal")
    x = normal.encode(table, np.random.default_rng(1))[:, 0]
    z = (x - 0.5) * 8  # the normal scores of the CDF levels
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05 and 0 <= x.min() and x.max() <= 1
    quantile = VectorEncoding.fit(table, "quantile")
    u = np.random.default_rng(2).random(1000)
    from_normal = normal.columns[0].marginal.from_space(0.5 + ndtri(u) / 8, "normal")
    from_quantile = quantile.columns[0].marginal.from_space(u, "quantile")
    np.testing.assert_allclose(from_normal, from_quantile)


def test_ks_counts_a_float32_value_and_its_decoded_twin_as_one_value():
    real = pd.DataFrame({"FiO2": np.array([0.4, 0.5] * 200, dtype=np.float32)})
    synth = pd.DataFrame({"FiO2": np.array([0.4, 0.5] * 200, dtype=np.float64)})
    assert numeric_marginals(real, synth, ["FiO2"]).value == 0.0
    assert column_fidelity(real, synth, [("FiO2", "numeric")], {"FiO2": (True, 1)}).value == 0.0


def test_a_series_value_of_one_patient_is_not_support_however_many_cells_hold_it():
    from core.data.cohort import TemporalData
    from core.flexgen.encoding import TemporalScaling

    rng = np.random.default_rng(0)
    values = rng.choice([3.0, 8.0, 15.0], size=(60, 24, 1))
    values[0, :, 0] = 4.0  # one patient's 24 cells, more than k, yet one patient
    temporal = TemporalData(
        values.astype(np.float32), np.ones_like(values, bool), ("GCS",), (None,), 1.0
    )
    marginal = TemporalScaling.fit(temporal, np.arange(60)).marginals[0]
    assert marginal.support == (3.0, 8.0, 15.0)
    assert (values == 4.0).sum() >= MIN_SUPPORT_COUNT
