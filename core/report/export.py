"""Exports users download. Text cells are neutralised against spreadsheet formula injection."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from core.data.cohort import Cohort
from core.data.visits import VisitCohort

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with a single quote (OWASP)."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if (
            series.dtype == object
            or pd.api.types.is_string_dtype(series)
            or isinstance(series.dtype, pd.CategoricalDtype)
        ):
            text = series.astype(object)
            risky = text.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START))
            if risky.any():
                out[col] = text.where(~risky, "'" + text.astype(str))
    safe_columns = [
        "'" + c if isinstance(c, str) and c.startswith(_FORMULA_START) else c for c in out.columns
    ]
    out.columns = safe_columns
    return out


def file_stem(name: str, limit: int = 60) -> str:
    """A download file name stem from a display name: letters and digits kept, the rest ``_``."""
    return "".join(ch if ch.isalnum() else "_" for ch in name)[:limit]


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    return neutralise_formulas(frame).to_csv(index=False).encode("utf-8")


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def patient_frames(cohort: Cohort) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables linked by ``record_id``: static (one row per patient, label last) and the
    series in long format (one row per observed cell: record_id, hour, variable, unit, value)."""
    ids = np.asarray(cohort.record_ids, dtype=object)
    static = pd.concat(
        [pd.DataFrame({"record_id": ids}), cohort.static.reset_index(drop=True)], axis=1
    )
    if cohort.labels is not None:
        classes = list(cohort.label_classes)
        static[cohort.label_name or "label"] = [
            (classes[i] if classes else i) if i >= 0 else None for i in cohort.labels
        ]
    t = cohort.temporal
    rec, step, var = np.nonzero(t.mask)
    long = pd.DataFrame(
        {
            "record_id": ids[rec],
            "hour": step * t.step_hours,
            "variable": np.asarray(t.variables, dtype=object)[var],
            "unit": np.asarray(t.units, dtype=object)[var],
            "value": t.values[rec, step, var],
        }
    )
    return static, long


def patients_parquet_bytes(cohort: Cohort) -> bytes:
    """One Parquet file: the long series with each patient's static columns joined on."""
    static, long = patient_frames(cohort)
    return to_parquet_bytes(long.merge(static, on="record_id", how="right"))


def meds_parquet_bytes(cohort: VisitCohort) -> bytes:
    """A visit cohort as one MEDS data shard, cast and checked by the ``meds`` package's schema."""
    import meds
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = meds.DataSchema.align(pa.Table.from_pandas(cohort.to_meds(), preserve_index=False))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
