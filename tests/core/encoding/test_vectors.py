import numpy as np
import pytest

from core.data.diagnoses import load_eicu_diagnoses
from core.data.physionet2012 import load_physionet2012
from core.data.records import ehr_table, summarise_temporal
from core.encoding.vectors import VectorEncoding
from core.errors import CohortError
from tests.conftest import EICU_DIAGNOSIS, EICU_PATIENT


def test_temporal_summaries(physionet_tar):
    c = load_physionet2012(physionet_tar)
    frame, specs = summarise_temporal(c)
    assert len(specs) == 37 * 5 and specs[0].unit == "g/dL"
    row = frame.iloc[0]
    assert (row["HR_first"], row["HR_last"], row["HR_min"], row["HR_max"], row["HR_mean"]) == (
        80,
        90,
        80,
        90,
        85,
    )
    assert np.isnan(row["Albumin_mean"])  # never observed -> missing, not imputed
    assert frame.loc[2, "Urine_first"] == 150


def test_round_trip_mixed_table(physionet_tar, physionet_outcomes):
    table = ehr_table(load_physionet2012(physionet_tar, physionet_outcomes))
    enc = VectorEncoding.fit(table)
    x = enc.encode(table)
    assert x.shape == (3, enc.dim) and x.min() >= 0 and x.max() <= 1
    back = enc.decode(x, table.record_ids, table.labels)
    assert back.columns == table.columns
    for f in table.static_features:
        a, b = table.static[f.name], back.static[f.name]
        if f.kind == "categorical":
            assert a.astype(str).tolist() == b.astype(str).tolist()
        else:
            np.testing.assert_allclose(
                a.to_numpy(float), b.to_numpy(float), rtol=1e-4, equal_nan=True
            )
    assert [s.kind for s in back.static_features] == [s.kind for s in table.static_features]


def test_missing_indicators_are_shared_and_explicit(physionet_tar):
    table = ehr_table(load_physionet2012(physionet_tar))
    enc = VectorEncoding.fit(table)
    hr_dims = {c.missing_dim for c in enc.columns if c.name.startswith("HR_")}
    assert len(hr_dims) == 1  # the five HR summaries share one indicator
    names = enc.dim_names
    assert "Height/Weight missing" in names and "HR_* missing" in names  # 1002 lacks both
    x = enc.encode(table)
    height = next(c for c in enc.columns if c.name == "Height")
    assert x[1, height.missing_dim] == 1.0 and x[0, height.missing_dim] == 0.0


def test_decode_clips_to_observed_range_and_argmaxes(physionet_tar):
    table = ehr_table(load_physionet2012(physionet_tar))
    enc = VectorEncoding.fit(table)
    x = np.full((2, enc.dim), 0.0, dtype=np.float32)
    age = next(c for c in enc.columns if c.name == "Age")
    icu = next(c for c in enc.columns if c.name == "ICUType")
    x[0, age.start], x[1, age.start] = 7.0, -3.0
    x[:, icu.start + 2] = 0.9
    out = enc.decode(x, np.array(["a", "b"], dtype=object))
    assert out.static["Age"].tolist() == [76, 44]  # clipped to the training range
    assert out.static["ICUType"].tolist() == [icu.categories[2]] * 2


def test_codes_round_trip_and_mismatch_errors():
    table = ehr_table(
        load_eicu_diagnoses(EICU_DIAGNOSIS.encode(), patient_table=EICU_PATIENT.encode())
    )
    enc = VectorEncoding.fit(table)
    x = enc.encode(table)
    assert enc.static_dim == 0 and x.sum() == table.codes.matrix.sum()
    back = enc.decode(x, table.record_ids)
    assert (back.codes.matrix != table.codes.matrix).nnz == 0
    other = ehr_table(load_eicu_diagnoses(EICU_DIAGNOSIS.encode(), granularity="full"))
    with pytest.raises(CohortError, match="code vocabulary"):
        enc.encode(other)


def test_json_round_trip(physionet_tar):
    enc = VectorEncoding.fit(ehr_table(load_physionet2012(physionet_tar)))
    assert VectorEncoding.from_json(enc.to_json()) == enc


def test_stored_bounds_are_top_coded_not_patient_values():
    import pandas as pd

    from core.data.cohort import FeatureSpec
    from core.data.records import EHRTable

    rng = np.random.default_rng(0)
    height = np.r_[rng.normal(170, 10, 997).round(1), 431.8, 1.8, 250.3]  # two data-entry outliers
    table = EHRTable(
        np.array([f"r{i}" for i in range(1000)], dtype=object),
        pd.DataFrame({"Height": height}),
        (FeatureSpec("Height", "numeric", "cm"),),
        None,
    )
    codec = VectorEncoding.fit(table).columns[0]
    assert codec.lo not in height and codec.hi not in height
    assert 130 <= codec.lo < 150 and 190 < codec.hi <= 210  # outliers are not published
    assert codec.hi == float(f"{codec.hi:.2g}") and codec.lo == float(
        f"{codec.lo:.2g}"
    )  # 2 significant digits
