"""Loaders of visit-sequence cohorts: MEDS, MIMIC-III / MIMIC-IV, eICU.

- **MEDS** (Medical Event Data Standard): Parquet rows ``subject_id, time, code, numeric_value``
  validated with the ``meds`` package's schema; events are grouped into visits by a visit-id
  column, by a visit-start code, or by a time window. The modality is the code's first
  ``//``-separated part (``DIAGNOSIS//ICD9//401`` -> modality ``DIAGNOSIS``).
- **MIMIC-III / MIMIC-IV**: one visit per admission (``ADMISSIONS.ADMITTIME`` gives the gaps),
  diagnoses from ``DIAGNOSES_ICD`` parsed as in :mod:`core.data.diagnoses`, optional procedures
  and prescriptions.
- **eICU**: one visit per ICU unit stay. Within a hospital stay the gap is exact (unit admission
  is ``-hospitaladmitoffset`` minutes after hospital admission). Across hospital stays eICU gives
  only the discharge year, so those gaps are unknown (NaN): they are left out of gap statistics
  and of the gap model's training, and hospital stays are ordered by discharge year, then by
  health-system stay id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.data import icd
from core.data.diagnoses import _drop_invalid, load_eicu_diagnoses
from core.data.io import (
    DEFAULT_LIMITS,
    PARQUET_MAGIC,
    InputLimits,
    Source,
    iter_archive,
    maybe_gunzip,
    read_bytes,
    read_table,
    source_name,
)
from core.data.tables import refuse_first_row
from core.data.visits import VISIT_MARKER, VisitCohort, from_frames
from core.errors import CohortError, ConfigError

VISIT_RULES = ("column", "code", "window")
MEDS_PREFIX = "MEDS_"  # MEDS_BIRTH, MEDS_DEATH: timeline markers, not visit codes


# --- MEDS ----------------------------------------------------------------------------------------
def _meds_shards(source: Source, label: str, limits: InputLimits) -> list[tuple[str, bytes]]:
    """(name, Parquet bytes) of every shard: one Parquet file, a zip/tar of them, or a folder."""
    if isinstance(source, str | Path) and Path(source).is_dir():
        files = sorted(Path(source).rglob("*.parquet"))
        if not files:
            raise CohortError("no .parquet files in the MEDS folder", source=label)
        return [(f.relative_to(source).as_posix(), read_bytes(f, f.name, limits)) for f in files]
    data = read_bytes(source, label, limits)
    if data[:4] == PARQUET_MAGIC:
        return [(label, data)]
    shards = [(n, b) for n, b in iter_archive(data, label, limits) if n.endswith(".parquet")]
    shards = [(n, maybe_gunzip(b, n, limits)) for n, b in shards if "metadata/" not in n]
    if not shards:
        raise CohortError("no MEDS data .parquet files in the archive", source=label)
    return shards


def _read_meds_shard(name: str, data: bytes) -> pd.DataFrame:
    import meds
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CohortError(f"not a readable Parquet file ({exc})", source=name) from None
    try:
        table = meds.DataSchema.align(table)  # casts to the MEDS types or says why not
    except Exception as exc:  # flexible_schema raises its own validation errors
        raise CohortError(f"not MEDS data: {exc}", source=name) from None
    return table.to_pandas()


def load_meds(
    source: Source,
    *,
    visit_rule: str | None = None,
    visit_column: str = "visit_id",
    visit_code: str = "HOSPITAL_ADMISSION",
    window_hours: float = 24.0,
    name: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> VisitCohort:
    """MEDS data -> visits. ``visit_rule``: "column" (events sharing ``visit_column``), "code" (a
    visit starts at each event whose code starts with ``visit_code``) or "window" (a visit holds
    a subject's events within ``window_hours`` of its first event). Default: "column" when the
    column exists, else "window"."""
    label = source_name(source, name)
    if visit_rule is not None and visit_rule not in VISIT_RULES:
        raise ConfigError(f"Unknown visit rule '{visit_rule}'; expected one of {VISIT_RULES}.")
    if not window_hours > 0:
        raise ConfigError(f"The visit window must be positive, got {window_hours} h.")
    frame = pd.concat(
        [_read_meds_shard(n, b) for n, b in _meds_shards(source, label, limits)], ignore_index=True
    )
    rule = visit_rule or ("column" if visit_column in frame.columns else "window")
    notes: list[str] = []
    if rule == "column" and visit_column not in frame.columns:
        raise CohortError(f"no column '{visit_column}' to group visits by", source=label)
    undated = frame["time"].isna()
    if undated.any():
        notes.append(f"{int(undated.sum())} event(s) without a time (static) are not in any visit.")
    deaths = set(frame.loc[frame["code"] == "MEDS_DEATH", "subject_id"])
    subjects_all = frame["subject_id"].unique()
    frame = frame[~undated & ~frame["code"].str.startswith(MEDS_PREFIX)].copy()
    if frame.empty:
        raise CohortError(
            "no timed clinical events (only static or MEDS_ marker rows)", source=label
        )
    frame = frame.sort_values(["subject_id", "time"], kind="stable", ignore_index=True)
    if rule == "column":
        missing = frame[visit_column].isna()
        if missing.any():
            notes.append(f"{int(missing.sum())} event(s) without a {visit_column} were dropped.")
            frame = frame[~missing]
        key = frame["subject_id"].astype(str) + "|" + frame[visit_column].astype(str)
    elif rule == "code":
        starts = frame["code"].str.startswith(visit_code)
        new_subject = frame["subject_id"].ne(frame["subject_id"].shift())
        number = (starts | new_subject).groupby(frame["subject_id"]).cumsum()
        key = frame["subject_id"].astype(str) + "|" + number.astype(str)
    else:
        key = _window_keys(frame, window_hours)
    frame = frame.assign(key=key.to_numpy())
    start = frame.groupby("key", sort=False)["time"].min()
    visits = pd.DataFrame(
        {
            "key": start.index,
            "patient": frame.groupby("key", sort=False)["subject_id"]
            .first()
            .astype(str)
            .to_numpy(),
            "order": start.to_numpy(),
        }
    ).sort_values(["patient", "order"], kind="stable")
    gap = visits.groupby("patient")["order"].diff().dt.total_seconds() / 86400.0
    visits["gap_days"] = gap.fillna(0.0).to_numpy()
    marker = (frame["code"] == VISIT_MARKER) | (
        frame["code"].str.startswith(visit_code) & (rule == "code")
    )
    clinical = frame[~marker]
    parts = clinical["code"].str.split("//", n=1, expand=True)
    has_prefix = parts[1].notna() if parts.shape[1] > 1 else pd.Series(False, index=parts.index)
    events = pd.DataFrame(
        {
            "key": clinical["key"].to_numpy(),
            "modality": np.where(has_prefix, parts[0], "code"),
            "code": np.where(has_prefix, parts[1] if parts.shape[1] > 1 else "", clinical["code"]),
        }
    )
    if frame["numeric_value"].notna().any():
        notes.append(
            "numeric values are not modelled: a measurement counts as its code's presence."
        )
    labels = None
    if deaths:
        labels = pd.Series(
            [int(s in deaths) for s in subjects_all], index=[str(s) for s in subjects_all]
        )
    return from_frames(
        name=f"MEDS visits ({label}, {rule} rule)",
        visits=visits,
        events=events,
        modalities=tuple(sorted(set(events["modality"]))),
        labels=labels,
        label_name="death" if deaths else None,
        label_classes=("alive", "died") if deaths else (),
        source=f"MEDS: {label}",
        notes=notes,
    )


def _window_keys(frame: pd.DataFrame, window_hours: float) -> pd.Series:
    window = pd.Timedelta(hours=window_hours)
    keys = np.empty(len(frame), dtype=object)
    subjects, times = frame["subject_id"].to_numpy(), frame["time"].to_numpy()
    visit, start, last_subject = 0, None, None
    for i in range(len(frame)):
        if subjects[i] != last_subject or times[i] - start > window:
            visit, start, last_subject = visit + 1, times[i], subjects[i]
        keys[i] = f"{subjects[i]}|{visit}"
    return pd.Series(keys, index=frame.index)


# --- MIMIC-III / MIMIC-IV ------------------------------------------------------------------------
def load_mimic_visits(
    admissions: Source,
    diagnoses: Source,
    *,
    procedures: Source | None = None,
    prescriptions: Source | None = None,
    granularity: icd.Granularity = "3digit",
    names: dict[str, str] | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> VisitCohort:
    """One visit per admission; MIMIC-III (upper-case columns, ``ICD9_CODE``) or MIMIC-IV
    (``icd_code`` + ``icd_version``) is told apart by the diagnosis table's columns."""
    names = names or {}
    if granularity not in icd.GRANULARITIES:
        raise ConfigError(
            f"Unknown code granularity '{granularity}'; expected {icd.GRANULARITIES}."
        )
    adm_label = source_name(admissions, names.get("admissions"))
    adm = read_table(
        admissions, adm_label, required=("subject_id", "hadm_id", "admittime"), limits=limits
    )
    times = pd.to_datetime(adm["admittime"], errors="coerce", format="ISO8601")
    refuse_first_row(times.isna().to_numpy(), "not a date-time", adm_label, "admittime")
    adm = adm.assign(
        order=times, key=adm["hadm_id"].str.strip(), patient=adm["subject_id"].str.strip()
    )
    if adm["key"].duplicated().any():
        raise CohortError(
            f"admission {adm.loc[adm['key'].duplicated(), 'key'].iloc[0]} appears twice",
            source=adm_label,
            column="hadm_id",
        )
    adm = adm.sort_values(["patient", "order"], kind="stable")
    gap = adm.groupby("patient")["order"].diff().dt.total_seconds() / 86400.0
    visits = adm[["key", "patient", "order"]].assign(gap_days=gap.fillna(0.0).to_numpy())
    notes: list[str] = []
    events = [_mimic_diagnoses(diagnoses, names.get("diagnoses"), granularity, notes, limits)]
    if procedures is not None:
        events.append(_mimic_codes(procedures, names.get("procedures"), "procedure", limits))
    if prescriptions is not None:
        events.append(_mimic_drugs(prescriptions, names.get("prescriptions"), limits))
    ev = pd.concat(events, ignore_index=True)
    outside = ~ev["key"].isin(visits["key"])
    if outside.any():
        notes.append(
            f"{int(outside.sum())} code row(s) of admissions not in ADMISSIONS were skipped."
        )
        ev = ev[~outside]
    labels = None
    if "hospital_expire_flag" in {c.lower() for c in adm.columns}:
        col = next(c for c in adm.columns if c.lower() == "hospital_expire_flag")
        flag = pd.to_numeric(adm[col], errors="coerce").fillna(-1).astype(int)
        labels = flag.groupby(adm["patient"]).max()
    with_codes = visits["key"].isin(ev["key"])
    if not with_codes.all():
        notes.append(
            f"{int((~with_codes).sum())} admission(s) have no codes (kept as empty visits)."
        )
    return from_frames(
        name=f"MIMIC visits ({adm_label}, {granularity})",
        visits=visits,
        events=ev,
        modalities=tuple(dict.fromkeys(ev["modality"])),
        labels=labels,
        label_name="hospital_mortality" if labels is not None else None,
        label_classes=("alive", "expired") if labels is not None else (),
        source=f"MIMIC ADMISSIONS + DIAGNOSES_ICD: {adm_label}",
        notes=notes,
    )


def _lower_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={c: c.lower() for c in frame.columns})


def _mimic_diagnoses(
    source: Source, name: str | None, granularity: str, notes: list[str], limits: InputLimits
) -> pd.DataFrame:
    label = source_name(source, name)
    frame = _lower_columns(read_table(source, label, required=("hadm_id",), limits=limits))
    if "icd_version" in frame.columns and "icd_code" in frame.columns:
        version = pd.to_numeric(frame["icd_version"], errors="coerce")
        refuse_first_row(
            ~version.isin((9, 10)).to_numpy(), "expected 9 or 10", label, "icd_version"
        )
        frame = frame.assign(icd_version=version.astype(int))
        frame = _drop_invalid(frame, "icd_code", "icd_version", notes, label)
        parts = [
            f"ICD{v}:"
            + icd.coarsen(
                frame.loc[frame["icd_version"] == v, "icd_code"].map(icd.normalise), v, granularity
            )
            for v in sorted(set(frame["icd_version"]))
        ]
        codes = pd.concat(parts).reindex(frame.index)
    elif "icd9_code" in frame.columns:
        frame = _drop_invalid(frame, "icd9_code", None, notes, label)
        codes = icd.coarsen(frame["icd9_code"].map(icd.normalise), 9, granularity)
    else:
        raise CohortError(
            "needs ICD9_CODE (MIMIC-III) or icd_code + icd_version (MIMIC-IV)", source=label
        )
    return pd.DataFrame(
        {"key": frame["hadm_id"].str.strip(), "modality": "diagnosis", "code": codes}
    )


def _mimic_codes(
    source: Source, name: str | None, modality: str, limits: InputLimits
) -> pd.DataFrame:
    label = source_name(source, name)
    frame = _lower_columns(read_table(source, label, required=("hadm_id",), limits=limits))
    col = "icd_code" if "icd_code" in frame.columns else "icd9_code"
    if col not in frame.columns:
        raise CohortError("needs ICD9_CODE or icd_code", source=label)
    frame = frame[frame[col].notna() & (frame[col].str.strip() != "")]
    prefix = frame["icd_version"].str.strip().radd("ICD").add(":") if "icd_version" in frame else ""
    return pd.DataFrame(
        {
            "key": frame["hadm_id"].str.strip(),
            "modality": modality,
            "code": prefix + frame[col].str.strip(),
        }
    )


def _mimic_drugs(source: Source, name: str | None, limits: InputLimits) -> pd.DataFrame:
    label = source_name(source, name)
    frame = _lower_columns(read_table(source, label, required=("hadm_id", "drug"), limits=limits))
    frame = frame[
        frame["drug"].notna() & (frame["drug"].str.strip() != "") & frame["hadm_id"].notna()
    ]
    drug = frame["drug"].str.strip().str.lower().str.replace(r"\s+", " ", regex=True)
    return pd.DataFrame(
        {"key": frame["hadm_id"].str.strip(), "modality": "medication", "code": drug}
    )


# --- eICU ----------------------------------------------------------------------------------------
EICU_PATIENT_COLUMNS = (
    "patientunitstayid",
    "uniquepid",
    "patienthealthsystemstayid",
    "hospitaladmitoffset",
    "hospitaldischargeyear",
    "unitvisitnumber",
)


def load_eicu_visits(
    patient: Source,
    diagnosis: Source,
    *,
    admission_dx: Source | None = None,
    past_history: Source | None = None,
    granularity: icd.Granularity = "3digit",
    min_visits: int = 1,
    names: dict[str, str] | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> VisitCohort:
    """One visit per ICU unit stay, grouped by ``uniquepid``; ``min_visits`` keeps patients with
    at least that many stays (2 = patients who came back)."""
    names = names or {}
    if min_visits < 1:
        raise ConfigError(f"min_visits must be at least 1, got {min_visits}.")
    pt_label = source_name(patient, names.get("patient"))
    pt = read_table(patient, pt_label, required=EICU_PATIENT_COLUMNS, limits=limits)
    for col in ("hospitaladmitoffset", "hospitaldischargeyear", "unitvisitnumber"):
        values = pd.to_numeric(pt[col], errors="coerce")
        refuse_first_row(values.isna().to_numpy(), "expected a number", pt_label, col)
        pt[col] = values
    pt["key"] = pt["patientunitstayid"].str.strip()
    if pt["key"].duplicated().any():
        raise CohortError(
            f"stay {pt.loc[pt['key'].duplicated(), 'key'].iloc[0]} appears twice",
            source=pt_label,
            column="patientunitstayid",
        )
    pt["patient"] = pt["uniquepid"].str.strip()
    counts = pt.groupby("patient")["key"].transform("size")
    notes: list[str] = []
    if min_visits > 1:
        notes.append(
            f"kept {int((counts >= min_visits).sum())} stays of patients with >= {min_visits} stays."
        )
        pt = pt[counts >= min_visits]
        if pt.empty:
            raise CohortError(f"no patient has {min_visits} or more unit stays", source=pt_label)
    hospital = pd.to_numeric(pt["patienthealthsystemstayid"], errors="coerce").fillna(-1)
    pt = pt.assign(hospital=hospital, unit_day=-pt["hospitaladmitoffset"] / 1440.0)
    pt = pt.sort_values(
        ["patient", "hospitaldischargeyear", "hospital", "unitvisitnumber", "unit_day"],
        kind="stable",
    )
    same_hospital = pt["hospital"].eq(pt.groupby("patient")["hospital"].shift())
    gap = pt.groupby("patient")["unit_day"].diff()
    pt["gap_days"] = np.where(same_hospital, gap.clip(lower=0.0), np.nan)
    pt["order"] = np.arange(len(pt))
    notes.append(
        "Gaps within a hospital stay are exact (unit admission offsets); across hospital stays eICU "
        "gives only the discharge year, so those gaps are unknown."
    )
    stays = set(pt["key"])
    dx = load_eicu_diagnoses(
        diagnosis, granularity=granularity, name=names.get("diagnosis"), limits=limits
    )
    rows, cols = dx.codes.matrix.nonzero()
    events = [
        pd.DataFrame(
            {
                "key": dx.record_ids[rows].astype(str),
                "modality": "diagnosis",
                "code": np.asarray(dx.codes.vocabulary, dtype=object)[cols],
            }
        )
    ]
    if admission_dx is not None:
        events.append(
            _eicu_text_codes(
                admission_dx, names.get("admission_dx"), "admitdxpath", "admission_dx", limits
            )
        )
    if past_history is not None:
        events.append(
            _eicu_text_codes(
                past_history, names.get("past_history"), "pasthistorypath", "past_history", limits
            )
        )
    ev = pd.concat(events, ignore_index=True)
    ev = ev[ev["key"].isin(stays)]
    labels = None
    if "hospitaldischargestatus" in pt.columns:
        status = (
            pt["hospitaldischargestatus"].str.strip().str.lower().map({"alive": 0, "expired": 1})
        )
        labels = status.fillna(-1).astype(int).groupby(pt["patient"]).max()
    return from_frames(
        name=f"eICU visits ({pt_label}, {granularity})",
        visits=pt[["key", "patient", "order", "gap_days"]],
        events=ev,
        modalities=tuple(dict.fromkeys(ev["modality"])),
        labels=labels,
        label_name="hospital_mortality" if labels is not None else None,
        label_classes=("alive", "expired") if labels is not None else (),
        source=f"eICU patient + diagnosis: {pt_label}",
        notes=notes + [n for n in dx.notes if "patient table" not in n],
    )


# Which rows of a free-text category table are clinical categories (the rest are questions such as
# "admitted from the O.R.?" or note options such as "performed").
EICU_CATEGORY_PATHS = {
    "admitdxpath": "|All Diagnosis|",
    "pasthistorypath": "/Past History/Organ Systems/",
}


def _eicu_text_codes(
    source: Source, name: str | None, column: str, modality: str, limits: InputLimits
) -> pd.DataFrame:
    """Category tables (admissionDx, pastHistory): rows under the clinical category path, with
    the path's last part, lower-cased, as the code."""
    label = source_name(source, name)
    frame = read_table(source, label, required=("patientunitstayid", column), limits=limits)
    frame = frame[
        frame[column].notna() & frame[column].str.contains(EICU_CATEGORY_PATHS[column], regex=False)
    ]
    code = frame[column].str.split(r"[|/]", regex=True).str[-1].str.strip().str.lower()
    return pd.DataFrame(
        {"key": frame["patientunitstayid"].str.strip(), "modality": modality, "code": code}
    )
