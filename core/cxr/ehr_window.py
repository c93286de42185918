"""The EHR window between a prior chest X-ray and the forecast time, as model tokens.

Users supply it as a long table (``hours`` since the prior image, ``variable``, ``value``) or a
wide hourly table (an ``hour`` column plus one column per variable). Variables the model was not
trained on are listed and ignored; negative hours are refused; unsorted rows are sorted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from core.cxr.ehr_encoder import EHRTokens
from core.data.io import DEFAULT_LIMITS, InputLimits, Source, read_table, source_name
from core.errors import CohortError

HOUR_COLUMNS = ("hours", "hour", "hours_since_prior", "time_hours")
CLIP = 5.0  # robust z-scores beyond this are clipped: single outliers must not dominate


@dataclass(frozen=True)
class EHRVocabulary:
    """Variables a forecaster knows, with the robust scaling (median, IQR) fitted on training."""

    variables: tuple[str, ...]
    centre: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, windows: list[pd.DataFrame], variables: tuple[str, ...]) -> EHRVocabulary:
        data = pd.concat(windows, ignore_index=True) if windows else pd.DataFrame()
        centre, scale = [], []
        for var in variables:
            vals = data.loc[data["variable"] == var, "value"].to_numpy(float) if len(data) else []
            vals = np.asarray(vals, float)
            if len(vals) == 0:
                centre.append(0.0)
                scale.append(1.0)
                continue
            q1, med, q3 = np.percentile(vals, [25, 50, 75])
            centre.append(round(float(med), 4))
            scale.append(round(float(max(q3 - q1, 1e-3 * max(abs(med), 1.0))), 4))
        return cls(tuple(variables), tuple(centre), tuple(scale))

    def to_json(self) -> dict:
        return {
            "variables": list(self.variables),
            "centre": list(self.centre),
            "scale": list(self.scale),
        }

    @classmethod
    def from_json(cls, raw: dict) -> EHRVocabulary:
        return cls(tuple(raw["variables"]), tuple(raw["centre"]), tuple(raw["scale"]))

    def index(self) -> dict[str, int]:
        return {v.lower(): i for i, v in enumerate(self.variables)}


@dataclass(frozen=True)
class EHRWindow:
    """Validated observations: ``hours`` >= 0 sorted, canonical ``variable`` names, finite values."""

    frame: pd.DataFrame
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_observations(self) -> int:
        return len(self.frame)

    @property
    def last_hour(self) -> float:
        return float(self.frame["hours"].max()) if len(self.frame) else 0.0


def _find_column(frame: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    lower = {str(c).lower().strip(): c for c in frame.columns}
    return next((lower[n] for n in names if n in lower), None)


def window_from_frame(
    frame: pd.DataFrame, vocabulary: EHRVocabulary, label: str = "EHR window"
) -> EHRWindow:
    """Validate a long or wide table against ``vocabulary``; typed errors name the problem.
    Whatever the table holds, nothing but a :class:`CohortError` leaves this function."""
    if not isinstance(frame, pd.DataFrame):
        raise CohortError("expected a table of EHR observations", source=label)
    dupes = sorted({str(c)[:40] for c in frame.columns[frame.columns.duplicated()]})
    if dupes:
        raise CohortError(f"columns appear more than once: {', '.join(dupes)}", source=label)
    frame = frame.rename(columns=str)
    try:
        return _window(frame, vocabulary, label)
    except CohortError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # pandas met cells of a kind this table cannot hold (nested, mixed or huge values);
        # the exception's text may quote cells, so it is not repeated
        raise CohortError(
            "the table's columns or values are not of the expected kinds (hours and values "
            f"numbers, variables names; {type(exc).__name__})",
            source=label,
        ) from None


def _window(frame: pd.DataFrame, vocabulary: EHRVocabulary, label: str) -> EHRWindow:
    hour_col = _find_column(frame, HOUR_COLUMNS)
    if hour_col is None:
        raise CohortError(
            f"no hours column; expected one of {', '.join(HOUR_COLUMNS)} (hours since the prior image)",
            source=label,
        )
    var_col = _find_column(frame, ("variable", "parameter", "name"))
    val_col = _find_column(frame, ("value",))
    if var_col is not None and val_col is not None:
        long = pd.DataFrame(
            {"hours": frame[hour_col], "variable": frame[var_col], "value": frame[val_col]}
        )
    else:  # wide: one column per variable
        value_cols = [c for c in frame.columns if c != hour_col]
        if not value_cols:
            raise CohortError("a wide EHR table needs at least one variable column", source=label)
        long = pd.DataFrame(  # not melt: a column named "value" or "variable" is a variable too
            {
                "hours": np.tile(frame[hour_col].to_numpy(), len(value_cols)),
                "variable": np.repeat(np.asarray(value_cols, dtype=object), len(frame)),
                "value": np.concatenate([frame[c].to_numpy(dtype=object) for c in value_cols]),
            }
        )
    notes: list[str] = []
    hours = pd.to_numeric(long["hours"], errors="coerce")
    bad_hours = long["hours"].notna() & hours.isna() | np.isinf(hours.fillna(0))
    if bad_hours.any():
        first = long.loc[bad_hours, "hours"].iloc[0]
        raise CohortError(
            f"{int(bad_hours.sum())} hour value(s) are not finite numbers (first: {str(first)[:40]!r})",
            source=label,
            column="hours",
        )
    if (hours < 0).any():
        raise CohortError(
            f"{int((hours < 0).sum())} observation(s) have negative hours (min {hours.min():g}); "
            "hours count from the prior image, so they must be 0 or more",
            source=label,
            column="hours",
        )
    long = long.assign(hours=hours).dropna(subset=["hours"])
    names = long["variable"].astype(str).str.strip()
    index = vocabulary.index()
    known = names.str.lower().map(index)
    unknown = sorted(set(names[known.isna()]))
    if unknown:
        listed = ", ".join(repr(u[:40]) for u in unknown[:10]) + (
            " ..." if len(unknown) > 10 else ""
        )
        notes.append(
            f"ignored {len(unknown)} variable(s) the model was not trained on: {listed}. "
            f"Known: {', '.join(vocabulary.variables)}."
        )
    values = pd.to_numeric(long["value"], errors="coerce")
    usable = known.notna() & np.isfinite(values)
    dropped = int((known.notna() & long["value"].notna() & ~usable).sum())
    if dropped:
        notes.append(f"ignored {dropped} value(s) that are not finite numbers")
    out = pd.DataFrame(
        {
            "hours": long.loc[usable, "hours"].to_numpy(float),
            "variable": [vocabulary.variables[int(i)] for i in known[usable]],
            "value": values[usable].to_numpy(float),
        }
    )
    if not out["hours"].is_monotonic_increasing:
        notes.append("rows were not in time order; sorted by hours")
    out = out.sort_values("hours", kind="stable").reset_index(drop=True)
    return EHRWindow(out, tuple(notes))


def read_ehr_window(
    source: Source,
    vocabulary: EHRVocabulary,
    name: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> EHRWindow:
    label = source_name(source, name)
    return window_from_frame(read_table(source, label, limits=limits), vocabulary, label)


def tokens_from_windows(
    windows: list[EHRWindow | pd.DataFrame], vocabulary: EHRVocabulary, max_tokens: int
) -> EHRTokens:
    """Pad windows into a token batch; the most recent ``max_tokens`` observations are kept."""
    frames = [w.frame if isinstance(w, EHRWindow) else w for w in windows]
    length = max(1, min(max_tokens, max((len(f) for f in frames), default=0)))
    b = len(frames)
    values = torch.zeros(b, length)
    variables = torch.zeros(b, length, dtype=torch.long)
    hours = torch.zeros(b, length)
    mask = torch.zeros(b, length, dtype=torch.bool)
    index = vocabulary.index()
    centre = np.asarray(vocabulary.centre)
    scale = np.asarray(vocabulary.scale)
    for i, f in enumerate(frames):
        f = f.iloc[-length:] if len(f) > length else f
        n = len(f)
        if n == 0:
            continue
        idx = np.array([index[str(v).lower()] for v in f["variable"]], dtype=np.int64)
        z = np.clip((f["value"].to_numpy(float) - centre[idx]) / scale[idx], -CLIP, CLIP)
        values[i, :n] = torch.as_tensor(z, dtype=torch.float32)
        variables[i, :n] = torch.as_tensor(idx)
        hours[i, :n] = torch.tensor(f["hours"].to_numpy(float), dtype=torch.float32)
        mask[i, :n] = True
    return EHRTokens(values, variables, hours, mask)
