"""Scatter irregular observations onto a regular ``[N, T, D]`` grid with an observation mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import ConfigError

AGGREGATIONS = ("mean", "last", "first", "min", "max")


@dataclass(frozen=True)
class GridSpec:
    n_records: int
    n_steps: int
    n_variables: int
    aggregate: str = "mean"


@dataclass(frozen=True, eq=False)
class Grid:
    values: np.ndarray  # float32 [N, T, D], NaN where unobserved
    mask: np.ndarray  # bool [N, T, D]


def to_grid(
    *,
    record_index: np.ndarray,
    step_index: np.ndarray,
    variable_index: np.ndarray,
    values: np.ndarray,
    spec: GridSpec,
) -> Grid:
    """Aggregate observations falling in the same (record, step, variable) cell.

    ``last``/``first`` follow the order of the inputs, so pass observations sorted by time.
    Indices must already lie inside the grid; NaN values are ignored.
    """
    if spec.aggregate not in AGGREGATIONS:
        raise ConfigError(
            f"Unknown aggregation '{spec.aggregate}'; expected one of {AGGREGATIONS}."
        )
    if spec.n_steps < 1 or spec.n_variables < 1:
        raise ConfigError("A grid needs at least one step and one variable.")
    shape = (spec.n_records, spec.n_steps, spec.n_variables)
    out = np.full(shape, np.nan, dtype=np.float32)
    mask = np.zeros(shape, dtype=bool)
    keep = ~np.isnan(values)
    if keep.any():
        flat = np.ravel_multi_index(
            (record_index[keep], step_index[keep], variable_index[keep]), shape
        )
        agg = pd.Series(values[keep]).groupby(flat, sort=False).agg(spec.aggregate)
        cells = agg.index.to_numpy()
        out.reshape(-1)[cells] = agg.to_numpy(dtype=np.float32)
        mask.reshape(-1)[cells] = True
    return Grid(values=out, mask=mask)
