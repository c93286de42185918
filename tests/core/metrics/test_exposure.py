"""The per-patient view ranks by the strongest attack of the battery: known answers for the
DOMIAS ranking and for the choice of attack."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError
from core.metrics.base import MetricResult
from core.metrics.exposure import patient_exposure, strongest_attack
from core.metrics.suite import Review


def test_domias_ranks_the_patients_whose_copies_were_released_first():
    rng = np.random.default_rng(0)
    train, holdout = rng.normal(size=(400, 6)), rng.normal(size=(400, 6))
    leaked = np.arange(0, 400, 40)  # ten training patients, each released five times
    synth = np.vstack([rng.normal(size=(350, 6)), np.repeat(train[leaked], 5, axis=0)])
    exposed = patient_exposure(train, holdout, synth, attack="domias")
    assert set(exposed["train_row"][:10]) == set(leaked)
    assert (exposed["holdout_p"][:10] <= 2 / 401).all()  # at most one holdout patient as high
    calm = patient_exposure(train, holdout, rng.normal(size=(400, 6)), attack="domias")
    assert (calm["holdout_p"] < 0.05).mean() < 0.12  # nobody leaked: p about uniform
    with pytest.raises(ConfigError, match="Unknown attack"):
        patient_exposure(train, holdout, synth, attack="shadow")


def _review(**aurocs: float) -> Review:
    ids = {"distance": "mia_accuracy", "domias": "domias_auroc"}
    results = [
        MetricResult(n, "privacy", a, False, 0.5, id=ids[n], details={"auroc": a})
        for n, a in aurocs.items()
    ]
    return Review("set", results, {}, "", 100, None)


def test_the_strongest_attack_is_the_one_with_the_highest_auroc():
    assert strongest_attack(_review(distance=0.51, domias=0.62)) == "domias"
    assert strongest_attack(_review(distance=0.70, domias=0.62)) == "distance"
    assert strongest_attack(_review(distance=0.55)) == "distance"
    assert strongest_attack(_review()) == "distance"  # neither ran
