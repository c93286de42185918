"""The real split's share of TSTR and detection is computed once per split and changes nothing."""

from __future__ import annotations

import numpy as np

from core.metrics import detection, memo, utility


def _data(seed: int, n: int = 240, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] + rng.normal(size=n) > 0).astype(np.int64)


def _values(results) -> list:
    return [(r.id, r.value, r.ci, r.ideal, r.details.get("trtr_ci"), r.details.get("real_vs_real_ci")) for r in results]  # fmt: skip


def test_digest_tells_arrays_apart_by_content_shape_and_type():
    a = np.arange(6, dtype=np.float32)
    assert memo.digest(a) == memo.digest(a.copy())
    assert memo.digest(a) != memo.digest(a.reshape(2, 3))
    assert memo.digest(a) != memo.digest(a.astype(np.float64))
    assert memo.digest(a) != memo.digest(a + np.float32(1e-6))
    assert memo.digest("x", 1) != memo.digest("x", 2)


def test_tstr_after_another_set_equals_tstr_alone_and_fits_the_real_model_once(monkeypatch):
    train, holdout = _data(0), _data(1)
    set_a, set_b = _data(2), _data(3)
    memo.clear()
    alone = _values(utility.tstr(train, set_b, holdout, n_boot=20))
    memo.clear()
    fits = []
    real_scores = utility._holdout_scores
    monkeypatch.setattr(utility, "_holdout_scores", lambda *a: fits.append(a[0]) or real_scores(*a))
    utility.tstr(train, set_a, holdout, n_boot=20)
    after = _values(utility.tstr(train, set_b, holdout, n_boot=20))
    assert after == alone
    # per classifier: train-on-real once, train-on-synthetic once per set
    assert sorted(fits) == sorted(list(utility.CLASSIFIERS) * 3)


def test_detection_reference_is_shared_and_does_not_depend_on_the_set(monkeypatch):
    (train, _), (holdout, _) = _data(0, n=300), _data(1, n=90)
    small_set = _data(2, n=150)[0]  # fewer records than train: the pairing subsamples train
    other_set = _data(3, n=300)[0]
    memo.clear()
    alone = detection.detection(train, other_set, holdout, n_boot=20)
    memo.clear()
    runs = []
    real_reference = detection._reference
    monkeypatch.setattr(detection, "_reference", lambda *a: runs.append(a[3]) or real_reference(*a))
    first = detection.detection(train, small_set, holdout, n_boot=20)
    after = detection.detection(train, other_set, holdout, n_boot=20)
    assert _values(after) == _values(alone)
    assert sorted(runs) == sorted(detection.DETECTORS)  # once per detector, not once per set
    for a, b in zip(first, after, strict=True):
        assert a.details["real_vs_real_auroc"] == b.details["real_vs_real_auroc"]
