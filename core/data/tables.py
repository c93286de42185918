"""Generic inputs: a wide table (one row per record) and a long time series (id, time, variable, value)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from core.data.cohort import FEATURE_KINDS, Cohort, FeatureKind, FeatureSpec, TemporalData
from core.data.grid import AGGREGATIONS, GridSpec, to_grid
from core.data.io import DEFAULT_LIMITS, InputLimits, Source, read_table, source_name
from core.errors import CohortError, ConfigError

ID_CANDIDATES = (
    "patient_id",
    "subject_id",
    "record_id",
    "recordid",
    "patientunitstayid",
    "stay_id",
    "hadm_id",
    "id",
)
_TRUE = {"1", "1.0", "true", "t", "yes", "y"}
_FALSE = {"0", "0.0", "false", "f", "no", "n"}
MAX_CATEGORY_LEVELS = 50


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def refuse_first_row(
    bad: np.ndarray | pd.Series, describe: str | Callable[[int], str], label: str, column: str
) -> None:
    """Raise for the first flagged data row, naming its file line (header = line 1) and column;
    ``describe`` is the message, or a function of the row that builds it."""
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        row = _first_bad(bad)
        text = describe(row) if callable(describe) else describe
        raise CohortError(text, source=label, line=row + 2, column=column)


def infer_kind(values: pd.Series) -> FeatureKind | None:
    """Guess a column's kind from its text; None when it looks like free text or an identifier."""
    present = values.dropna().astype(str).str.strip()
    present = present[present != ""]
    if present.empty:
        return "numeric"
    lowered = set(present.str.lower().unique())
    if lowered <= (_TRUE | _FALSE):
        return "binary"
    numeric = pd.to_numeric(present, errors="coerce")
    if numeric.notna().all():
        return "binary" if set(numeric.unique()) <= {0.0, 1.0} else "numeric"
    # Mostly numbers with a few stray strings: a numeric column with bad cells, not categories.
    if numeric.notna().mean() >= 0.9:
        return "numeric"
    n_levels = present.nunique()
    # Few levels, or levels that repeat: categories. All-distinct text is an id or free text.
    if n_levels <= MAX_CATEGORY_LEVELS and (n_levels <= 10 or n_levels <= len(present) // 2):
        return "categorical"
    return None


def _convert(
    values: pd.Series, kind: FeatureKind, column: str, label: str
) -> tuple[pd.Series, FeatureSpec]:
    text = values.astype(str).str.strip().where(values.notna())
    text = text.where(text != "")
    if kind == "numeric":
        num = pd.to_numeric(text, errors="coerce")
        bad = (num.isna() & text.notna()).to_numpy()
        refuse_first_row(
            bad, lambda row: f"expected a number, found {text.iloc[row]!r}", label, column
        )
        if not np.isfinite(num.dropna().to_numpy(dtype=float)).all():
            row = _first_bad(~np.isfinite(num.fillna(0).to_numpy(dtype=float)))
            raise CohortError("infinite value", source=label, line=row + 2, column=column)
        return num.astype(float).reset_index(drop=True), FeatureSpec(column, "numeric")
    if kind == "binary":
        low = text.str.lower()
        mapped = low.map(lambda v: 1.0 if v in _TRUE else (0.0 if v in _FALSE else np.nan))
        bad = (mapped.isna() & text.notna()).to_numpy()
        refuse_first_row(
            bad,
            lambda row: f"expected 0/1 (or yes/no, true/false), found {text.iloc[row]!r}",
            label,
            column,
        )
        return mapped.astype(float).reset_index(drop=True), FeatureSpec(column, "binary")
    levels = tuple(sorted(text.dropna().unique(), key=str))
    if len(levels) > MAX_CATEGORY_LEVELS:
        raise CohortError(
            f"{len(levels)} distinct values; categorical columns may have at most {MAX_CATEGORY_LEVELS}",
            source=label,
            column=column,
        )
    cat = pd.Categorical(text, categories=list(levels))
    return pd.Series(cat), FeatureSpec(column, "categorical", categories=levels)


def _encode_labels(
    values: pd.Series, column: str, label: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    text = values.astype(str).str.strip().where(values.notna())
    text = text.where(text != "")
    levels = sorted(text.dropna().unique(), key=lambda v: (pd.to_numeric(v, errors="coerce"), v))
    if len(levels) < 2:
        raise CohortError("label column needs at least two classes", source=label, column=column)
    if len(levels) > 20:
        raise CohortError(
            f"label column has {len(levels)} classes; at most 20 are supported",
            source=label,
            column=column,
        )
    index = {v: i for i, v in enumerate(levels)}
    return text.map(index).fillna(-1).to_numpy(dtype=np.int64), tuple(levels)


def load_wide_table(
    source: Source,
    *,
    id_column: str | None = None,
    patient_column: str | None = None,
    label_column: str | None = None,
    types: Mapping[str, str] | None = None,
    name: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> Cohort:
    """One row per record -> static features with inferred (or overridden) kinds.

    ``types`` maps column -> 'binary' | 'categorical' | 'numeric' | 'drop' and wins over
    inference. Without ``id_column`` a conventional id column is looked for (patient_id, ...).
    """
    label = source_name(source, name)
    frame = read_table(source, label, limits=limits)
    types = dict(types or {})
    for col, kind in types.items():
        if col not in frame.columns:
            raise ConfigError(f"Type override names column '{col}', which is not in {label}.")
        if kind not in (*FEATURE_KINDS, "drop"):
            raise ConfigError(
                f"Type override for '{col}' must be one of {(*FEATURE_KINDS, 'drop')}, got '{kind}'."
            )
    for col, role in ((id_column, "id"), (patient_column, "patient"), (label_column, "label")):
        if col is not None and col not in frame.columns:
            raise CohortError(f"the chosen {role} column '{col}' is not in the table", source=label)
    notes: list[str] = []
    if id_column is None:
        lower = {c.lower(): c for c in frame.columns}
        id_column = next((lower[c] for c in ID_CANDIDATES if c in lower), None)
    if id_column is None:
        ids = pd.Series([f"row-{i + 2}" for i in range(len(frame))])
        notes.append("No id column found; records are named by their line number.")
    else:
        ids = frame[id_column].astype(str).str.strip()
        blank = (frame[id_column].isna() | (ids == "")).to_numpy()
        if blank.any():
            raise CohortError(
                "identifier is empty", source=label, line=_first_bad(blank) + 2, column=id_column
            )
        dup = ids.duplicated(keep=False).to_numpy()
        if dup.any():
            first = _first_bad(dup)
            rows = np.flatnonzero(ids.to_numpy() == ids.iloc[first])[:3] + 2
            raise CohortError(
                f"duplicate id {ids.iloc[first]!r} on lines {', '.join(map(str, rows))}; "
                "a wide table needs one row per record",
                source=label,
                column=id_column,
            )
    patients = frame[patient_column].astype(str).str.strip() if patient_column else ids
    labels, classes = (None, ())
    if label_column:
        labels, classes = _encode_labels(frame[label_column], label_column, label)
    reserved = {c for c in (id_column, patient_column, label_column) if c}
    static: dict[str, pd.Series] = {}
    specs: list[FeatureSpec] = []
    for col in frame.columns:
        if col in reserved or types.get(col) == "drop":
            continue
        kind = types.get(col) or infer_kind(frame[col])
        if kind is None:
            raise CohortError(
                f"{frame[col].nunique()} distinct text values: looks like free text or an identifier; "
                "set its type explicitly or drop it",
                source=label,
                column=col,
            )
        static[col], spec = _convert(frame[col], kind, col, label)  # type: ignore[arg-type]
        specs.append(spec)
    if not specs:
        raise CohortError(
            "no feature columns left after the id, patient and label columns", source=label
        )
    return Cohort(
        name=f"Table ({label})",
        record_ids=ids.to_numpy(dtype=object),
        patient_ids=patients.to_numpy(dtype=object),
        static=pd.DataFrame(static),
        static_features=tuple(specs),
        labels=labels,
        label_name=label_column,
        label_classes=classes,
        source=f"wide table: {label}",
        notes=tuple(notes),
    )


TIME_UNITS = {"hours": 1.0, "minutes": 1 / 60, "days": 24.0, "seconds": 1 / 3600}


def _parse_times(text: pd.Series, ids: pd.Series, unit: str, label: str, column: str) -> np.ndarray:
    """Hours since each record's start: numbers in ``unit``, 'HH:MM' offsets, or datetimes."""
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all():
        hours = numeric.to_numpy(dtype=float) * TIME_UNITS[unit]
        bad = ~np.isfinite(hours)
        refuse_first_row(
            bad, lambda row: f"time {text.iloc[row]!r} is not a finite number", label, column
        )
        return hours
    parts = text.str.extract(r"^(\d+):(\d{2})$")
    if parts[0].notna().all():
        return parts[0].astype(float).to_numpy() + parts[1].astype(float).to_numpy() / 60
    stamps = pd.to_datetime(text, errors="coerce", format="mixed")
    bad = stamps.isna().to_numpy()
    refuse_first_row(
        bad,
        lambda row: f"time {text.iloc[row]!r} is neither a number, 'HH:MM' nor a date-time",
        label,
        column,
    )
    start = stamps.groupby(ids.to_numpy()).transform("min")
    return ((stamps - start).dt.total_seconds() / 3600).to_numpy(dtype=float)


def load_long_timeseries(
    source: Source,
    *,
    id_column: str = "id",
    time_column: str = "time",
    variable_column: str = "variable",
    value_column: str = "value",
    time_unit: str = "hours",
    step_hours: float = 1.0,
    n_steps: int = 48,
    aggregate: str = "mean",
    name: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> Cohort:
    """Rows of (id, time, variable, value) resampled onto ``n_steps`` bins of ``step_hours``."""
    if time_unit not in TIME_UNITS:
        raise ConfigError(f"Time unit must be one of {tuple(TIME_UNITS)}, got '{time_unit}'.")
    if not (step_hours > 0 and 1 <= n_steps <= 10_000):
        raise ConfigError("Step must be positive and the grid 1..10,000 steps long.")
    if aggregate not in AGGREGATIONS:
        raise ConfigError(f"Aggregation must be one of {AGGREGATIONS}, got '{aggregate}'.")
    label = source_name(source, name)
    cols = (id_column, time_column, variable_column, value_column)
    frame = read_table(source, label, required=cols, limits=limits)
    ids = frame[id_column].astype(str).str.strip()
    blank = (frame[id_column].isna() | (ids == "")).to_numpy()
    refuse_first_row(blank, "identifier is empty", label, id_column)
    variables = frame[variable_column].astype(str).str.strip()
    refuse_first_row(
        frame[variable_column].isna(), "variable name is empty", label, variable_column
    )
    values = pd.to_numeric(frame[value_column], errors="coerce")
    bad = (values.isna() & frame[value_column].notna()).to_numpy()
    refuse_first_row(
        bad,
        lambda row: f"expected a number, found {frame[value_column].iloc[row]!r}",
        label,
        value_column,
    )
    vals = values.to_numpy(dtype=float)
    refuse_first_row(np.isinf(vals), "infinite value", label, value_column)
    hours = _parse_times(
        frame[time_column].astype(str).str.strip(), ids, time_unit, label, time_column
    )
    step = np.floor(hours / step_hours).astype(np.int64)
    inside = (step >= 0) & (step < n_steps)
    notes: list[str] = []
    if (~inside).any():
        notes.append(
            f"{int((~inside).sum())} observation(s) outside 0..{n_steps * step_hours:g} h were left out."
        )
    order = np.argsort(hours, kind="stable")  # so 'last'/'first' follow time
    record_ids, rec_index = np.unique(ids.to_numpy(dtype=str), return_inverse=True)
    var_names, var_index = np.unique(variables.to_numpy(dtype=str), return_inverse=True)
    # Case-insensitive order, as the PhysioNet loader uses, so the same variables line up.
    by_name = np.argsort(np.char.lower(var_names), kind="stable")
    rank = np.empty_like(by_name)
    rank[by_name] = np.arange(len(by_name))
    var_names, var_index = var_names[by_name], rank[var_index]
    sel = order[inside[order]]
    grid = to_grid(
        record_index=rec_index[sel],
        step_index=step[sel],
        variable_index=var_index[sel],
        values=vals[sel],
        spec=GridSpec(len(record_ids), n_steps, len(var_names), aggregate),
    )
    record_ids = record_ids.astype(object)
    return Cohort(
        name=f"Time series ({label})",
        record_ids=record_ids,
        patient_ids=record_ids.copy(),
        temporal=TemporalData(
            values=grid.values,
            mask=grid.mask,
            variables=tuple(var_names.tolist()),
            units=tuple(None for _ in var_names),
            step_hours=float(step_hours),
        ),
        source=f"long time series: {label}",
        notes=tuple(notes),
    )


def join_static(temporal: Cohort, static: Cohort, name: str | None = None) -> Cohort:
    """One cohort from a series cohort and a static (wide) cohort, matched on record id.

    Records in only one of the two keep the other part empty (a missing modality: NaN static
    row, or an all-false observation mask), so no record is dropped.
    """
    if temporal.temporal is None or static.static is None:
        raise CohortError("joining needs a time-series cohort and a static table")
    t_ids = pd.Index(temporal.record_ids.astype(str))
    s_ids = pd.Index(static.record_ids.astype(str))
    ids = t_ids.union(s_ids, sort=False)
    t_pos, s_pos = t_ids.get_indexer(ids), s_ids.get_indexer(ids)
    t = temporal.temporal
    values = np.full((len(ids), *t.values.shape[1:]), np.nan, dtype=np.float32)
    mask = np.zeros((len(ids), *t.mask.shape[1:]), dtype=bool)
    has_t = t_pos >= 0
    values[has_t], mask[has_t] = t.values[t_pos[has_t]], t.mask[t_pos[has_t]]
    frame = static.static.iloc[np.maximum(s_pos, 0)].reset_index(drop=True)
    frame.loc[s_pos < 0, :] = np.nan
    labels = None
    if static.labels is not None:
        labels = np.where(s_pos >= 0, static.labels[np.maximum(s_pos, 0)], -1).astype(np.int64)
    patients = np.where(
        s_pos >= 0, static.patient_ids[np.maximum(s_pos, 0)].astype(str), ids.to_numpy(dtype=str)
    ).astype(object)
    notes = [*temporal.notes, *static.notes]
    only_t, only_s = int((s_pos < 0).sum()), int((t_pos < 0).sum())
    if only_t or only_s:
        notes.append(
            f"{only_t} record(s) have a series but no static row, {only_s} a static row but no "
            "series: kept with that part missing."
        )
    return Cohort(
        name=name or temporal.name,
        record_ids=ids.to_numpy(dtype=object),
        patient_ids=patients,
        static=frame,
        static_features=static.static_features,
        temporal=replace(t, values=values, mask=mask),
        labels=labels,
        label_name=static.label_name,
        label_classes=static.label_classes,
        source=f"{temporal.source} + {static.source}",
        notes=tuple(notes),
    )
