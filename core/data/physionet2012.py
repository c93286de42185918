"""PhysioNet / Computing in Cardiology Challenge 2012 loader.

Input: the official ``set-a.tar.gz`` (or any set), a zip of it, or an extracted folder, holding one
``<RecordID>.txt`` per ICU stay with ``Time,Parameter,Value`` rows (``HH:MM`` since admission,
first 48 h); optionally ``Outcomes-*.txt`` for the label ``In-hospital_death``.

Output: static descriptors (Age, Gender, Height, ICUType, Weight at 00:00; ``-1`` = missing), an
hourly ``[N, 48, 37]`` grid of the time-varying parameters with an observation mask (several
values within one hour are aggregated), and the label. Each stay is its own patient: set-a has no
patient identifier beyond RecordID.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.cohort import Cohort, FeatureSpec, TemporalData
from core.data.grid import GridSpec, to_grid
from core.data.io import (
    DEFAULT_LIMITS,
    InputLimits,
    Source,
    iter_archive,
    read_bytes,
    read_table,
    source_name,
)
from core.data.tables import refuse_first_row
from core.errors import CohortError
from core.progress import ProgressCallback

DESCRIPTORS = ("RecordID", "Age", "Gender", "Height", "ICUType", "Weight")
ICU_TYPES = ("Coronary Care Unit", "Cardiac Surgery Recovery Unit", "Medical ICU", "Surgical ICU")

# Units from the challenge's parameter list.
UNITS: dict[str, str | None] = {
    "Albumin": "g/dL", "ALP": "IU/L", "ALT": "IU/L", "AST": "IU/L", "Bilirubin": "mg/dL",
    "BUN": "mg/dL", "Cholesterol": "mg/dL", "Creatinine": "mg/dL", "DiasABP": "mmHg",
    "FiO2": "fraction", "GCS": "points", "Glucose": "mg/dL", "HCO3": "mmol/L", "HCT": "%",
    "HR": "bpm", "K": "mEq/L", "Lactate": "mmol/L", "Mg": "mmol/L", "MAP": "mmHg",
    "MechVent": "0/1", "Na": "mEq/L", "NIDiasABP": "mmHg", "NIMAP": "mmHg", "NISysABP": "mmHg",
    "PaCO2": "mmHg", "PaO2": "mmHg", "pH": None, "Platelets": "cells/nL", "RespRate": "bpm",
    "SaO2": "%", "SysABP": "mmHg", "Temp": "°C", "TroponinI": "μg/L", "TroponinT": "μg/L",
    "Urine": "mL", "WBC": "cells/nL", "Weight": "kg",
}  # fmt: skip
TIME_SERIES = tuple(sorted(UNITS, key=str.lower))

STATIC_FEATURES = (
    FeatureSpec("Age", "numeric", "years"),
    FeatureSpec("Gender", "binary", None, description="1 = male, 0 = female"),
    FeatureSpec("Height", "numeric", "cm"),
    FeatureSpec("ICUType", "categorical", None, ICU_TYPES),
    FeatureSpec("Weight", "numeric", "kg", description="at ICU admission"),
)

_RECORD_NAME = re.compile(r"(?:^|/)(\d+)\.txt$")
_HEADER = b"Time,Parameter,Value"
_AGGREGATIONS = ("mean", "last", "min", "max")


def _collect_record_files(
    records: Source | Path, label: str, limits: InputLimits
) -> list[tuple[str, bytes]]:
    if isinstance(records, str | Path) and Path(records).is_dir():
        folder = Path(records)
        files = sorted(p for p in folder.rglob("*.txt") if _RECORD_NAME.search(p.as_posix()))
        total = sum(p.stat().st_size for p in files)
        if total > limits.max_uncompressed_bytes:
            raise CohortError("folder holds more data than the size limit", source=label)
        return [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in files]
    data = read_bytes(records, label, limits)
    return [(n, b) for n, b in iter_archive(data, label, limits) if _RECORD_NAME.search(n)]


def load_physionet2012(
    records: Source | Path,
    outcomes: Source | None = None,
    *,
    name: str | None = None,
    outcomes_name: str | None = None,
    n_hours: int = 48,
    aggregate: str = "mean",
    callback: ProgressCallback | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> Cohort:
    """Load a PhysioNet 2012 set into a :class:`Cohort` (see module docstring)."""
    label = source_name(records, name)
    if aggregate not in _AGGREGATIONS:
        raise CohortError(f"unknown aggregation '{aggregate}'; expected one of {_AGGREGATIONS}")
    files = _collect_record_files(records, label, limits)
    if not files:
        raise CohortError(
            "no record files found; expected '<RecordID>.txt' files such as set-a/132539.txt",
            source=label,
        )
    total = len(files)
    bodies: list[bytes] = []
    line_counts = np.empty(total, dtype=np.int64)
    record_ids: list[str] = []
    for i, (member, content) in enumerate(files):
        first_nl = content.find(b"\n")
        header = (content if first_nl < 0 else content[:first_nl]).strip()
        if header.lstrip(b"\xef\xbb\xbf") != _HEADER:
            raise CohortError(
                f"expected header 'Time,Parameter,Value', found {header[:60]!r}",
                source=f"{label}/{member}",
                line=1,
            )
        body = b"" if first_nl < 0 else content[first_nl + 1 :]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        bodies.append(body)
        line_counts[i] = body.count(b"\n")
        record_ids.append(_RECORD_NAME.search(member).group(1))
        if callback is not None and (i % 200 == 0 or i == total - 1):
            callback(i + 1, total + 1)
    if len(set(record_ids)) != len(record_ids):
        dup = pd.Index(record_ids)[pd.Index(record_ids).duplicated()][:5].tolist()
        raise CohortError(f"duplicate record files for RecordID(s) {', '.join(dup)}", source=label)

    rows = _parse_rows(b"".join(bodies), files, line_counts, label)
    rec = np.repeat(np.arange(total), line_counts)
    rows["rec"] = rec  # _parse_rows checked one parsed row per body line

    static, notes = _static_frame(rows, record_ids, label)
    temporal, temporal_notes = _temporal(rows, total, n_hours, aggregate)
    notes += temporal_notes

    labels = None
    label_name = None
    if outcomes is not None:
        labels = _outcome_labels(outcomes, outcomes_name, record_ids, limits)
        label_name = "In-hospital_death"
    if callback is not None:
        callback(total + 1, total + 1)
    ids = np.asarray(record_ids, dtype=object)
    return Cohort(
        name=f"PhysioNet 2012 ({label})",
        record_ids=ids,
        patient_ids=ids.copy(),
        static=static,
        static_features=STATIC_FEATURES,
        temporal=temporal,
        labels=labels,
        label_name=label_name,
        label_classes=("survived", "died") if labels is not None else (),
        source=f"PhysioNet/CinC Challenge 2012: {label}",
        notes=tuple(notes),
    )


def _parse_rows(
    blob: bytes, files: list[tuple[str, bytes]], line_counts: np.ndarray, label: str
) -> pd.DataFrame:
    ends = np.cumsum(line_counts)

    def locate(row: int) -> tuple[str, int]:
        i = int(np.searchsorted(ends, row, side="right"))
        start = 0 if i == 0 else int(ends[i - 1])
        return f"{label}/{files[i][0]}", row - start + 2  # +1 header, +1 one-based

    # 'HH:MM' becomes two integer fields so the C parser does all the work; values are numeric,
    # so no other ':' can be present in a valid file.
    try:
        frame = pd.read_csv(
            io.BytesIO(blob.replace(b":", b",")),
            header=None,
            names=["hh", "mm", "param", "value"],
            dtype={"hh": np.int64, "mm": np.int64, "param": str, "value": np.float64},
            keep_default_na=False,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise CohortError("record files contain no data rows", source=label) from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError):
        _raise_first_bad_row(blob, locate, label)
        raise
    if len(frame) != int(line_counts.sum()):
        raise CohortError("a record file has blank lines", source=label)
    return pd.DataFrame(
        {
            "minutes": frame["hh"].to_numpy() * 60 + frame["mm"].to_numpy(),
            "param": frame["param"].str.strip().to_numpy(dtype=object),
            "value": frame["value"].to_numpy(),
        }
    )


_ROW = re.compile(rb"^(\d{1,3}):(\d{2}),([^,]+),([^,]*)$")


def _raise_first_bad_row(blob: bytes, locate: Callable[[int], tuple[str, int]], label: str) -> None:
    """Slow path, only on malformed input: find and name the first bad line."""
    for row, line in enumerate(blob.split(b"\n")[:-1]):
        m = _ROW.match(line.rstrip(b"\r"))
        problem = None
        if m is None:
            problem = f"expected 'HH:MM,Parameter,Value', found {line[:60]!r}"
        else:
            try:
                float(m.group(4))
            except ValueError:
                problem = f"Value {m.group(4)[:40].decode(errors='replace')!r} is not a number"
        if problem:
            src, lineno = locate(row)
            raise CohortError(problem, source=src, line=lineno)
    raise CohortError("record files could not be parsed", source=label)


def _static_frame(
    rows: pd.DataFrame, record_ids: list[str], label: str
) -> tuple[pd.DataFrame, list[str]]:
    notes: list[str] = []
    n = len(record_ids)
    desc = rows[(rows["minutes"] == 0) & rows["param"].isin(DESCRIPTORS)]
    # The first 00:00 row of each descriptor is the general descriptor; later 00:00 Weight
    # rows (rare) are measurements and stay in the time series.
    first = desc.drop_duplicates(["rec", "param"], keep="first")
    wide = first.pivot(index="rec", columns="param", values="value").reindex(range(n))
    if "RecordID" in wide:
        stated = wide["RecordID"].to_numpy()
        expect = np.asarray(record_ids, dtype=float)
        wrong = np.flatnonzero(~np.isnan(stated) & (stated != expect))
        if len(wrong):
            raise CohortError(
                f"file says RecordID {int(stated[wrong[0]])} but is named {record_ids[wrong[0]]}.txt",
                source=label,
            )
    static = pd.DataFrame(index=range(n))
    for col in ("Age", "Gender", "Height", "Weight"):
        v = wide[col].to_numpy(dtype=float) if col in wide else np.full(n, np.nan)
        static[col] = np.where(v < 0, np.nan, v)  # -1 marks a missing descriptor
    g = static["Gender"].to_numpy()
    if np.any(~np.isnan(g) & ~np.isin(g, (0.0, 1.0))):
        notes.append("Gender values other than 0/1 were treated as missing.")
        static["Gender"] = np.where(np.isin(g, (0.0, 1.0)), g, np.nan)
    icu = wide["ICUType"].to_numpy(dtype=float) if "ICUType" in wide else np.full(n, np.nan)
    codes = np.where(np.isin(icu, (1, 2, 3, 4)), icu, np.nan)
    if np.any(~np.isnan(icu) & np.isnan(codes)):
        notes.append("ICUType values outside 1-4 were treated as missing.")
    icu_labels = pd.Categorical.from_codes(
        np.nan_to_num(codes, nan=0).astype(int) - 1, categories=list(ICU_TYPES)
    )
    static["ICUType"] = icu_labels
    static = static[[f.name for f in STATIC_FEATURES]]
    return static, notes


def _temporal(
    rows: pd.DataFrame, n: int, n_hours: int, aggregate: str
) -> tuple[TemporalData, list[str]]:
    ts = rows[~rows["param"].isin(DESCRIPTORS[:-1])]
    # Drop the 00:00 Weight descriptor (kept in static); keep later weight measurements.
    is_desc_weight = (ts["param"] == "Weight") & (ts["minutes"] == 0)
    first_weight = ts[is_desc_weight].drop_duplicates("rec", keep="first").index
    ts = ts.drop(index=first_weight)
    notes: list[str] = []
    unknown = sorted(set(ts["param"].unique()) - set(TIME_SERIES))
    if unknown:
        notes.append(f"Ignored {len(unknown)} unknown parameter(s): {', '.join(unknown[:8])}.")
        ts = ts[ts["param"].isin(TIME_SERIES)]
    var_index = {v: i for i, v in enumerate(TIME_SERIES)}
    # Hour bin h holds [h:00, h+1:00); the closing 48:00 stamp belongs to the last bin.
    minutes = ts["minutes"].to_numpy()
    hours = np.where(minutes == n_hours * 60, n_hours - 1, minutes // 60)
    late = hours >= n_hours
    if late.any():
        notes.append(f"{int(late.sum())} observations after hour {n_hours} were left out.")
    grid = to_grid(
        record_index=ts["rec"].to_numpy()[~late],
        step_index=hours[~late],
        variable_index=ts["param"].map(var_index).to_numpy()[~late],
        values=ts["value"].to_numpy(dtype=float)[~late],
        spec=GridSpec(
            n_records=n, n_steps=n_hours, n_variables=len(TIME_SERIES), aggregate=aggregate
        ),
    )
    temporal = TemporalData(
        values=grid.values,
        mask=grid.mask,
        variables=TIME_SERIES,
        units=tuple(UNITS[v] for v in TIME_SERIES),
        step_hours=1.0,
    )
    return temporal, notes


def _outcome_labels(
    outcomes: Source, outcomes_name: str | None, record_ids: list[str], limits: InputLimits
) -> np.ndarray:
    label = source_name(outcomes, outcomes_name)
    table = read_table(outcomes, label, required=("RecordID", "In-hospital_death"), limits=limits)
    ids = table["RecordID"].str.strip()
    died = pd.to_numeric(table["In-hospital_death"], errors="coerce")
    refuse_first_row(
        died.isna() | ~died.isin((0, 1)),
        lambda row: f"expected 0 or 1, found {table['In-hospital_death'].iloc[row]!r}",
        label,
        "In-hospital_death",
    )
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise CohortError(f"RecordID {dup} appears more than once", source=label, column="RecordID")
    lookup = pd.Series(died.to_numpy(dtype=np.int64), index=ids.to_numpy())
    missing = [r for r in record_ids if r not in lookup.index]
    if missing:
        raise CohortError(
            f"no outcome for {len(missing)} record(s), e.g. RecordID {', '.join(missing[:5])}",
            source=label,
        )
    return lookup.loc[record_ids].to_numpy(dtype=np.int64)
