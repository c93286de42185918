"""The uniform result every metric returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

Category = Literal["fidelity", "utility", "privacy"]


@dataclass(frozen=True, eq=False)
class MetricResult:
    name: str
    category: Category
    value: float
    higher_is_better: bool
    ideal: float
    lower_bound: float | None = None
    upper_bound: float | None = None
    ci: tuple[float, float] | None = None
    per_feature: pd.DataFrame | None = None
    details: dict = field(default_factory=dict)
    version: str = "1"
    id: str = ""  # stable machine name (the gate, the UI and reports look metrics up by it)
    spec: str = ""  # the id of the core.metrics.specs entry that computed it
