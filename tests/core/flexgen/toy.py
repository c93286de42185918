"""A small static + temporal cohort with a known structure, for FLEXGEN-EHR tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.cohort import Cohort, FeatureSpec, TemporalData

STATIC = (
    FeatureSpec("Age", "numeric", "years"),
    FeatureSpec("Male", "binary"),
    FeatureSpec("Unit", "categorical", None, ("medical", "surgical", "cardiac")),
)
VARIABLES = ("HR", "Lactate", "Temp")


def toy_cohort(
    n: int = 240,
    steps: int = 8,
    missing_static: float = 0.0,
    missing_temporal: float = 0.0,
    seed: int = 0,
) -> Cohort:
    """Heart rate tracks age, lactate is sparse and high in the 'sick' class, the unit sets the
    sampling density; ``missing_*`` hide a whole modality for that share of records."""
    rng = np.random.default_rng(seed)
    sick = rng.random(n) < 0.3
    age = np.clip(rng.normal(62 + 8 * sick, 12), 18, 95).round()
    male = (rng.random(n) < 0.55).astype(float)
    unit = rng.integers(0, 3, n)
    hours = np.arange(steps)
    hr = 60 + 0.4 * age[:, None] + 10 * sick[:, None] + rng.normal(0, 4, (n, steps))
    lactate = np.exp(rng.normal(0.3 + 0.8 * sick, 0.3))[:, None] + 0.05 * hours[None, :]
    temp = rng.normal(37 + 0.6 * sick, 0.3)[:, None] + rng.normal(0, 0.1, (n, steps))
    values = np.stack([hr, lactate, temp], axis=2).astype(np.float32)
    density = np.array([0.9, 0.5, 0.7])[unit]
    mask = np.stack(
        [
            rng.random((n, steps)) < density[:, None],
            rng.random((n, steps)) < 0.25,
            rng.random((n, steps)) < 0.5,
        ],
        axis=2,
    )
    mask[:, 0, 0] = True  # every series has at least one observation
    static = pd.DataFrame(
        {
            "Age": age,
            "Male": male,
            "Unit": pd.Categorical.from_codes(unit, categories=list(STATIC[2].categories)),
        }
    )
    order = rng.permutation(n)
    n_s, n_t = round(n * missing_static), round(n * missing_temporal)
    no_static, no_temporal = order[:n_s], order[n_s : n_s + n_t]
    static.loc[no_static, ["Age", "Male"]] = np.nan
    static.loc[no_static, "Unit"] = None
    mask[no_temporal] = False
    values = np.where(mask, values, np.nan).astype(np.float32)
    ids = np.asarray([f"r{i:04d}" for i in range(n)], dtype=object)
    return Cohort(
        name="toy static+temporal",
        record_ids=ids,
        patient_ids=ids.copy(),
        static=static,
        static_features=STATIC,
        temporal=TemporalData(values, mask, VARIABLES, ("bpm", "mmol/L", "°C"), 1.0),
        labels=sick.astype(np.int64),
        label_name="sick",
        label_classes=("no", "yes"),
    )
