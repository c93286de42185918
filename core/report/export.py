"""Exports users download. Text cells are neutralised against spreadsheet formula injection."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.cohort import Cohort
from core.data.visits import VisitCohort
from core.generation import SyntheticSet

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


@dataclass(frozen=True)
class ExportFile:
    """One file a synthetic set is downloaded as; ``build`` makes its bytes, the same each time
    (a review is bound to the sha256 of the release file, which is built again on release)."""

    id: str  # stable within the set's kind: "csv", "static", "meds", ...
    label: str  # what its download button says
    filename: str
    mime: str
    build: Callable[[], bytes]
    help: str | None = None
    release: bool = False  # the file the set is released as, and its review bound to


def export_files(name: str, synth: SyntheticSet) -> list[ExportFile]:
    """The files a set is offered as, by what it holds: visit sequences as a MEDS shard (released)
    and a long CSV; complete patients as static and series CSVs and one Parquet (released);
    records as CSV (released) and Parquet. The one place that picks the formats."""
    stem = file_stem(name)
    if synth.visits is not None:
        v = synth.visits
        return [
            ExportFile(
                "meds", "MEDS (Parquet)", f"{stem}.meds.parquet", "application/octet-stream",
                lambda: meds_parquet_bytes(v),
                "subject_id, time (synthetic dates from 2000-01-01), code = MODALITY//CODE, "
                "numeric_value, visit_id.",
                release=True,
            ),
            ExportFile(
                "long", "Long CSV", f"{stem}_visits.csv", "text/csv",
                lambda: to_csv_bytes(v.to_long()),
                "subject_id, visit, time (days since the first visit), modality, code.",
            ),
        ]  # fmt: skip
    if synth.cohort is not None:
        c = synth.cohort
        return [
            ExportFile(
                "static", "Static part (CSV)", f"{stem}_static.csv", "text/csv",
                lambda: to_csv_bytes(patient_frames(c)[0]),
            ),
            ExportFile(
                "long", "Series, long format (CSV)", f"{stem}_series_long.csv", "text/csv",
                lambda: to_csv_bytes(patient_frames(c)[1]),
                "One row per observed cell: record_id, hour, variable, unit, value.",
            ),
            ExportFile(
                "parquet", "Both in one Parquet", f"{stem}.parquet", "application/octet-stream",
                lambda: patients_parquet_bytes(c), release=True,
            ),
        ]  # fmt: skip
    table = synth.table
    return [
        ExportFile(
            "csv", "Download CSV", f"{stem}.csv", "text/csv",
            lambda: to_csv_bytes(table.to_frame()), release=True,
        ),
        ExportFile(
            "parquet", "Download Parquet", f"{stem}.parquet", "application/octet-stream",
            lambda: to_parquet_bytes(table.to_frame()),
        ),
    ]  # fmt: skip


def release_file(name: str, synth: SyntheticSet) -> ExportFile:
    """The file of :func:`export_files` that ``synth`` is released as."""
    return next(f for f in export_files(name, synth) if f.release)
