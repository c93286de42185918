"""The steward's per-patient view: which training patients a synthetic set gives away most, by
the score of a membership attack from the Review's battery, calibrated on holdout patients.

A training patient's p-value is the share of holdout patients (whom the model never saw) that the
attack finds at least as member-like: small p = exposed beyond what chance gives an unseen
patient. The ranking uses the strongest attack the Review ran (the highest AUROC), so a steward
looks first at the patients that attack would name. For the steward's session only: it points at
individual patients and is never exported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import ConfigError
from core.metrics import domias
from core.metrics.distances import nearest, nearest_distances
from core.metrics.ids import MetricId


@dataclass(frozen=True)
class Attack:
    metric_id: str  # the Review's result of this attack
    label: str
    score: str  # what its per-patient score is, in words


ATTACKS = {
    "distance": Attack(
        MetricId.MIA,
        "distance attack",
        "closeness to the nearest synthetic record (minus the L1 distance)",
    ),
    "domias": Attack(
        MetricId.DOMIAS,
        "DOMIAS density ratio",
        "synthetic over reference log density (DOMIAS)",
    ),
}


def attack_auroc(review, name: str) -> float | None:
    """The AUROC the Review measured for attack ``name`` (None: it did not run)."""
    result = review.get(ATTACKS[name].metric_id)
    if result is None:
        return None
    auroc = result.details.get("auroc", result.value)
    return float(auroc) if auroc is not None and np.isfinite(auroc) else None


def strongest_attack(review) -> str:
    """The attack of the battery with the highest AUROC in ``review`` (the distance attack when
    neither ran)."""
    measured = {n: a for n in ATTACKS if (a := attack_auroc(review, n)) is not None}
    return max(measured, key=measured.get) if measured else "distance"


def patient_exposure(
    train: np.ndarray,
    holdout: np.ndarray,
    synth: np.ndarray,
    *,
    attack: str = "distance",
    k: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Per training patient: the attack's score, its holdout-calibrated p-value and the
    distance to (and ``k`` rows of) the nearest synthetic records. Rows are training positions,
    most exposed first."""
    if attack not in ATTACKS:
        raise ConfigError(f"Unknown attack '{attack}'; expected one of {tuple(ATTACKS)}.")
    d_train, idx = nearest(train, synth, k=k)
    if attack == "distance":
        s_train, s_holdout = -d_train[:, 0], -nearest_distances(holdout, synth)[:, 0]
    else:
        s_train, s_holdout = domias.patient_scores(train, holdout, synth, seed=seed)
    ranked = np.sort(s_holdout)
    at_least_as_high = len(ranked) - np.searchsorted(ranked, s_train, side="left")
    frame = pd.DataFrame(
        {
            "train_row": np.arange(len(train)),
            "score": s_train,
            "holdout_p": (1 + at_least_as_high) / (1 + len(ranked)),
            "nearest_distance": d_train[:, 0],
            "nearest": list(idx),
        }
    )
    return frame.sort_values(["holdout_p", "score"], ascending=[True, False], kind="stable",
                              ignore_index=True)  # fmt: skip
