import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.data.cohort import CodeMatrix, Cohort, FeatureSpec, split_cohort
from core.errors import CohortError, ConfigError


def make_cohort(n=200, patients=None, labels=None):
    ids = np.array([f"r{i}" for i in range(n)], dtype=object)
    rng = np.random.default_rng(0)
    return Cohort(
        name="toy",
        record_ids=ids,
        patient_ids=ids.copy() if patients is None else patients,
        static=pd.DataFrame({"age": rng.normal(60, 10, n)}),
        static_features=(FeatureSpec("age", "numeric", "years"),),
        codes=CodeMatrix(
            sp.csr_array(rng.random((n, 5)) < 0.3, dtype=np.uint8), tuple("abcde"), "ICD-9", "full"
        ),
        labels=labels,
    )


def test_split_is_deterministic_and_disjoint():
    c = make_cohort()
    a, b = split_cohort(c, 0.25, seed=3), split_cohort(c, 0.25, seed=3)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.holdout, b.holdout)
    assert len(a.holdout) == 50 and not set(a.train) & set(a.holdout)
    assert len(a.train) + len(a.holdout) == c.n_records
    assert not np.array_equal(split_cohort(c, 0.25, seed=4).holdout, a.holdout)


def test_split_keeps_patients_together():
    patients = np.array([f"p{i // 3}" for i in range(300)], dtype=object)  # 3 records per patient
    c = make_cohort(300, patients=patients)
    s = split_cohort(c, 0.2, seed=1)
    assert not set(patients[s.train]) & set(patients[s.holdout])
    assert s.n_holdout_patients == 20 and len(s.holdout) == 60


def test_split_is_stratified_on_label():
    labels = np.r_[np.ones(20), np.zeros(180)].astype(np.int64)
    for seed in range(5):
        s = split_cohort(make_cohort(labels=labels), 0.2, seed)
        assert s.stratified and labels[s.holdout].sum() == 4


def test_split_without_enough_positives_is_not_stratified():
    labels = np.zeros(50, dtype=np.int64)
    labels[0] = 1
    s = split_cohort(make_cohort(50, labels=labels), 0.2, 0)
    assert not s.stratified


def test_split_rejects_bad_fractions():
    with pytest.raises(ConfigError):
        split_cohort(make_cohort(), 0.0)
    with pytest.raises(CohortError, match="at least two patients"):
        split_cohort(make_cohort(1), 0.2)
    tiny = split_cohort(make_cohort(3), 0.1)  # rounds to zero, but each side keeps a patient
    assert len(tiny.holdout) == 1 and len(tiny.train) == 2


def test_subset_and_fingerprint():
    c = make_cohort()
    sub = c.subset(np.array([5, 1]))
    assert list(sub.record_ids) == ["r5", "r1"] and sub.codes.matrix.shape == (2, 5)
    assert sub.static["age"].iloc[0] == c.static["age"].iloc[5]
    assert c.fingerprint() == make_cohort().fingerprint() != sub.fingerprint()


def test_validation_errors():
    with pytest.raises(CohortError, match="Duplicate record ids: r1"):
        make_cohort(3).__class__(
            name="x",
            record_ids=np.array(["r1", "r1"], dtype=object),
            patient_ids=np.array(["a", "b"], dtype=object),
            static=pd.DataFrame({"a": [1, 2]}),
            static_features=(FeatureSpec("a", "numeric"),),
        )
    with pytest.raises(CohortError, match="no static, temporal or code data"):
        Cohort(
            name="x",
            record_ids=np.array(["a"], dtype=object),
            patient_ids=np.array(["a"], dtype=object),
        )
