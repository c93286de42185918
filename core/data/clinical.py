"""What coded values mean and which values are physiologically plausible, for the variables of
PhysioNet 2012 (the challenge's own coding), by column name.

Value labels apply to columns named as in PhysioNet 2012 (``Gender``, ``ICUType``); the
plausible ranges to those variables and to their per-stay summaries (``HR_mean``,
``Weight_first`` ...). They are broad limits of what a living adult ICU patient can show, not
normal ranges: a value outside is almost surely a unit or entry error (height 462 cm, weight
472 kg), and the Cohort page counts such values per column without naming any record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.cohort import Cohort
from core.data.physionet2012 import ICU_TYPES

# The challenge's coding: Gender 0 = female, 1 = male; ICUType 1..4 in the order of ICU_TYPES.
VALUE_LABELS: dict[str, dict[int, str]] = {
    "Gender": {0: "female", 1: "male"},
    "ICUType": dict(enumerate(ICU_TYPES, start=1)),
}


@dataclass(frozen=True)
class PlausibleRange:
    low: float
    high: float
    unit: str


# Broad physiological limits (adult ICU) of the PhysioNet 2012 variables, in the challenge's
# units; chosen wide enough that no plausible measurement is flagged. Sources: the challenge's
# parameter list for units; clinical limits of survivable values (e.g. pH 6.5-8.0, sodium
# 100-200 mEq/L, temperature 25-45 °C).
PLAUSIBLE: dict[str, PlausibleRange] = {
    "Age": PlausibleRange(0, 120, "years"),
    "Height": PlausibleRange(100, 250, "cm"),
    "Weight": PlausibleRange(20, 300, "kg"),
    "Albumin": PlausibleRange(0.5, 7, "g/dL"),
    "ALP": PlausibleRange(0, 5000, "IU/L"),
    "ALT": PlausibleRange(0, 15000, "IU/L"),
    "AST": PlausibleRange(0, 25000, "IU/L"),
    "Bilirubin": PlausibleRange(0, 80, "mg/dL"),
    "BUN": PlausibleRange(0, 300, "mg/dL"),
    "Cholesterol": PlausibleRange(20, 1000, "mg/dL"),
    "Creatinine": PlausibleRange(0, 30, "mg/dL"),
    "DiasABP": PlausibleRange(0, 250, "mmHg"),
    "FiO2": PlausibleRange(0.21, 1, "fraction"),
    "GCS": PlausibleRange(3, 15, "points"),
    "Glucose": PlausibleRange(10, 2000, "mg/dL"),
    "HCO3": PlausibleRange(2, 60, "mmol/L"),
    "HCT": PlausibleRange(5, 75, "%"),
    "HR": PlausibleRange(0, 300, "bpm"),
    "K": PlausibleRange(1, 12, "mEq/L"),
    "Lactate": PlausibleRange(0, 40, "mmol/L"),
    "Mg": PlausibleRange(0.2, 10, "mmol/L"),
    "MAP": PlausibleRange(0, 300, "mmHg"),
    "MechVent": PlausibleRange(0, 1, "0/1"),
    "Na": PlausibleRange(100, 200, "mEq/L"),
    "NIDiasABP": PlausibleRange(0, 250, "mmHg"),
    "NIMAP": PlausibleRange(0, 300, "mmHg"),
    "NISysABP": PlausibleRange(0, 350, "mmHg"),
    "PaCO2": PlausibleRange(5, 200, "mmHg"),
    "PaO2": PlausibleRange(10, 800, "mmHg"),
    "pH": PlausibleRange(6.5, 8.0, ""),
    "Platelets": PlausibleRange(0, 2500, "cells/nL"),
    "RespRate": PlausibleRange(0, 100, "bpm"),
    "SaO2": PlausibleRange(0, 100, "%"),
    "SysABP": PlausibleRange(0, 350, "mmHg"),
    "Temp": PlausibleRange(25, 45, "°C"),
    "TroponinI": PlausibleRange(0, 500, "μg/L"),
    "TroponinT": PlausibleRange(0, 100, "μg/L"),
    "Urine": PlausibleRange(0, 10000, "mL"),
    "WBC": PlausibleRange(0, 500, "cells/nL"),
}
_SUMMARY = re.compile(r"^(?P<var>.+)_(?:first|last|min|max|mean|median)$")


def variable_of(column: str) -> str:
    """The PhysioNet variable a column holds: ``HR_mean`` -> ``HR``, ``Height`` -> ``Height``."""
    match = _SUMMARY.match(column)
    return match.group("var") if match and match.group("var") in PLAUSIBLE else column


def value_label(column: str, value: object) -> str | None:
    """The label of a coded value (``Gender`` 1 -> 'male'), or None when it has none."""
    labels = VALUE_LABELS.get(column)
    if labels is None or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(number) or number != int(number):
        return None
    return labels.get(int(number))


def coding(column: str) -> str:
    """'1 = male, 0 = female' for a labelled column, '' otherwise."""
    labels = VALUE_LABELS.get(column, {})
    return ", ".join(f"{k} = {v}" for k, v in sorted(labels.items(), reverse=column == "Gender"))


def binary_summary(column: str, share_of_ones: float) -> str:
    """'56.0% male (1 = male, 0 = female)' for a labelled 0/1 column, else '56.0% = 1'."""
    one = value_label(column, 1)
    if one is None:
        return f"{share_of_ones:.1%} = 1"
    return f"{share_of_ones:.1%} {one} ({coding(column)})"


def with_value_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` for display: coded values of labelled columns replaced by their
    labels ('male', 'Medical ICU'); values without a label and missing values kept as they are."""
    out = frame.copy()
    for column in frame.columns:
        if column in VALUE_LABELS:
            out[column] = [
                value if (label := value_label(column, value)) is None else label
                for value in frame[column].tolist()
            ]
    return out


def _flag(column: str, values: np.ndarray) -> dict | None:
    limits = PLAUSIBLE.get(variable_of(column))
    values = values[np.isfinite(values)]
    if limits is None or values.size == 0:
        return None
    low, high = values < limits.low, values > limits.high
    if not (low.any() or high.any()):
        return None
    return {
        "column": column,
        "plausible range": f"{limits.low:g}-{limits.high:g} {limits.unit}".strip(),
        "below": int(low.sum()),
        "above": int(high.sum()),
        "share of values": float((low.sum() + high.sum()) / values.size),
        "lowest": float(values.min()),
        "highest": float(values.max()),
    }


def implausible_values(cohort: Cohort) -> pd.DataFrame:
    """Per column of ``cohort`` (static features, temporal variables), how many observed values
    fall outside :data:`PLAUSIBLE`, with the column's lowest and highest value: counts and
    extremes only, no record. Empty when none does."""
    rows = []
    if cohort.static is not None:
        for spec in cohort.static_features:
            if spec.kind == "numeric":
                values = pd.to_numeric(cohort.static[spec.name], errors="coerce").to_numpy(float)
                rows.append(_flag(spec.name, values))
    if cohort.temporal is not None:
        t = cohort.temporal
        for j, var in enumerate(t.variables):
            rows.append(_flag(var, t.values[:, :, j][t.mask[:, :, j]].astype(float)))
    columns = ["column", "plausible range", "below", "above", "share of values", "lowest"]
    return pd.DataFrame([r for r in rows if r is not None], columns=[*columns, "highest"])
