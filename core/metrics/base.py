"""The uniform result every metric returns, and the typed evidence the release gate reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import pandas as pd

Category = Literal["fidelity", "utility", "privacy"]


@dataclass(frozen=True)
class NullSummary:
    """A permutation null of a statistic: mean, standard deviation, upper quantiles (keyed by
    level as ``f"{level:g}"``, JSON-ready) and the observed value's one-sided p-value."""

    mean: float
    sd: float
    quantiles: dict[str, float]
    p_value: float
    permutations: int

    def quantile(self, level: float) -> float:
        """The quantile at ``level`` (one of those kept)."""
        return self.quantiles[f"{level:g}"]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateEvidence:
    """What the release gate judges a result by (``details`` keep the same numbers for pages
    and reports): the quantity its threshold applies to, as observed, with its standard error
    and / or permutation null, and for an attack the group sizes it ran on."""

    estimate: float
    se: float | None = None
    null: NullSummary | None = None
    groups: tuple[int, int] | None = None  # (members, non-members)


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
    id: str = ""  # stable machine name (core.metrics.ids; the gate, UI and reports use it)
    spec: str = ""  # the id of the core.metrics.specs entry that computed it
    evidence: GateEvidence | None = None  # for the release gate's checks
