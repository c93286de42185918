"""Long-format diagnosis tables -> binary record x code matrix.

Supported layouts:
- MIMIC-III ``DIAGNOSES_ICD`` (SUBJECT_ID, HADM_ID, ICD9_CODE), per admission or per patient;
- MIMIC-IV ``diagnoses_icd`` (subject_id, hadm_id, icd_code, icd_version);
- eICU ``diagnosis`` (patientunitstayid, icd9code strings such as ``"401.9, I10"``), optionally
  with the eICU ``patient`` table for patient grouping (uniquepid) and hospital mortality.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data import icd
from core.data.cohort import CodeMatrix, Cohort
from core.data.io import DEFAULT_LIMITS, InputLimits, Source, read_table, source_name
from core.data.tables import refuse_first_row
from core.errors import CohortError, ConfigError

RecordLevel = Literal["admission", "patient"]


def _check_options(granularity: str, per: str | None = None) -> None:
    if granularity not in icd.GRANULARITIES:
        raise ConfigError(
            f"Unknown code granularity '{granularity}'; expected one of {icd.GRANULARITIES}."
        )
    if per is not None and per not in ("admission", "patient"):
        raise ConfigError(f"Records must be per 'admission' or per 'patient', got '{per}'.")


def _examples(values: pd.Series, k: int = 5) -> str:
    return ", ".join(repr(v) for v in values.drop_duplicates().head(k))


def build_code_cohort(
    *,
    record_keys: pd.Series,
    patient_keys: pd.Series,
    codes: pd.Series,
    name: str,
    system: str,
    granularity: str,
    source: str,
    notes: list[str],
    labels: pd.Series | None = None,
    label_name: str | None = None,
    label_classes: tuple[str, ...] = (),
) -> Cohort:
    """Rows of (record, patient, code) -> Cohort with a CSR code matrix (duplicates collapse).

    ``labels``, when given, is indexed by record key (-1 = unknown).
    """
    record_codes, record_uniques = pd.factorize(record_keys, sort=True)
    code_codes, vocab = pd.factorize(codes, sort=True)
    # factorize marks a missing key or code as -1: such rows carry no code.
    entries = (record_codes >= 0) & (code_codes >= 0)
    data = np.ones(int(entries.sum()), dtype=np.uint8)
    matrix = sp.coo_array(
        (data, (record_codes[entries], code_codes[entries])),
        shape=(len(record_uniques), len(vocab)),
    ).tocsr()
    matrix.sum_duplicates()
    matrix.data[:] = 1
    first_patient = pd.Series(patient_keys.to_numpy()).groupby(record_codes).first()
    first_patient = first_patient[first_patient.index >= 0]
    record_ids = np.asarray([str(r) for r in record_uniques], dtype=object)
    patient_ids = np.asarray([str(p) for p in first_patient.to_numpy()], dtype=object)
    label_arr = None
    if labels is not None:
        label_arr = labels.reindex(record_uniques).fillna(-1).to_numpy(dtype=np.int64)
    return Cohort(
        name=name,
        record_ids=record_ids,
        patient_ids=patient_ids,
        codes=CodeMatrix(
            matrix=sp.csr_array(matrix),
            vocabulary=tuple(str(v) for v in vocab),
            system=system,
            granularity=granularity,
        ),
        labels=label_arr,
        label_name=label_name,
        label_classes=label_classes,
        source=source,
        notes=tuple(notes),
    )


def _drop_invalid(
    frame: pd.DataFrame, column: str, version_col: str | None, notes: list[str], label: str
) -> pd.DataFrame:
    empty = frame[column].isna() | (frame[column].str.strip() == "")
    if empty.any():
        notes.append(f"{int(empty.sum())} row(s) without a code were skipped.")
    frame = frame[~empty].copy()
    frame[column] = frame[column].str.strip()
    if version_col is None:
        ok = icd.valid_mask(frame[column], 9)
    else:
        ok = np.where(
            frame[version_col].to_numpy() == 9,
            icd.valid_mask(frame[column], 9),
            icd.valid_mask(frame[column], 10),
        )
    if not ok.all():
        bad = frame.loc[~ok, column]
        notes.append(
            f"{len(bad)} row(s) with malformed codes were skipped, e.g. {_examples(bad, 3)}."
        )
        frame = frame[ok]
    if frame.empty:
        raise CohortError(f"no valid ICD codes in column '{column}'", source=label, column=column)
    return frame


def load_mimic3_diagnoses(
    source: Source,
    *,
    per: RecordLevel = "admission",
    granularity: icd.Granularity = "3digit",
    name: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> Cohort:
    """MIMIC-III ``DIAGNOSES_ICD``: one record per admission (HADM_ID) or per patient (SUBJECT_ID)."""
    _check_options(granularity, per)
    label = source_name(source, name)
    frame = read_table(
        source, label, required=("SUBJECT_ID", "HADM_ID", "ICD9_CODE"), limits=limits
    )
    _require_ids(frame, ("SUBJECT_ID", "HADM_ID"), label)
    notes: list[str] = []
    frame = _drop_invalid(frame, "ICD9_CODE", None, notes, label)
    codes = icd.coarsen(frame["ICD9_CODE"].map(icd.normalise), 9, granularity)
    record_col = "HADM_ID" if per == "admission" else "SUBJECT_ID"
    return build_code_cohort(
        record_keys=frame[record_col].str.strip(),
        patient_keys=frame["SUBJECT_ID"].str.strip(),
        codes=codes,
        name=f"MIMIC-III diagnoses ({label}, per {per}, {granularity})",
        system="ICD-9-CM",
        granularity=granularity,
        source=f"MIMIC-III DIAGNOSES_ICD: {label}",
        notes=notes,
    )


def load_mimic4_diagnoses(
    source: Source,
    *,
    per: RecordLevel = "admission",
    granularity: icd.Granularity = "3digit",
    versions: tuple[int, ...] = (9, 10),
    name: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> Cohort:
    """MIMIC-IV ``diagnoses_icd``. With both versions kept, codes are prefixed 'ICD9:'/'ICD10:'."""
    _check_options(granularity, per)
    if not versions or set(versions) - {9, 10}:
        raise ConfigError(f"ICD versions must be a non-empty subset of (9, 10), got {versions}.")
    label = source_name(source, name)
    frame = read_table(
        source, label, required=("subject_id", "hadm_id", "icd_code", "icd_version"), limits=limits
    )
    _require_ids(frame, ("subject_id", "hadm_id"), label)
    version = pd.to_numeric(frame["icd_version"], errors="coerce")
    refuse_first_row(
        ~version.isin((9, 10)),
        lambda row: f"expected 9 or 10, found {frame['icd_version'].iloc[row]!r}",
        label,
        "icd_version",
    )
    frame = frame.assign(icd_version=version.astype(int))
    frame = frame[frame["icd_version"].isin(versions)]
    if frame.empty:
        raise CohortError(f"no ICD-{'/'.join(map(str, versions))} codes in the table", source=label)
    notes: list[str] = []
    frame = _drop_invalid(frame, "icd_code", "icd_version", notes, label)
    parts = []
    for v in sorted(set(frame["icd_version"])):
        sel = frame["icd_version"] == v
        coded = icd.coarsen(frame.loc[sel, "icd_code"].map(icd.normalise), v, granularity)
        parts.append(f"ICD{v}:" + coded if len(versions) > 1 else coded)
    codes = pd.concat(parts).reindex(frame.index)
    record_col = "hadm_id" if per == "admission" else "subject_id"
    return build_code_cohort(
        record_keys=frame[record_col].str.strip(),
        patient_keys=frame["subject_id"].str.strip(),
        codes=codes,
        name=f"MIMIC-IV diagnoses ({label}, per {per}, {granularity})",
        system="/".join(f"ICD-{v}-CM" for v in sorted(versions)),
        granularity=granularity,
        source=f"MIMIC-IV diagnoses_icd: {label}",
        notes=notes,
    )


def load_eicu_diagnoses(
    source: Source,
    *,
    patient_table: Source | None = None,
    granularity: icd.Granularity = "3digit",
    versions: tuple[int, ...] = (9,),
    name: str | None = None,
    patient_table_name: str | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> Cohort:
    """eICU ``diagnosis``: one record per ICU stay (patientunitstayid) with a code.

    ``icd9code`` cells hold comma-separated codes of both versions ('401.9, I10'); each token is
    classified by its dotted form. With the ``patient`` table, stays are grouped by ``uniquepid``
    for the split and labelled with hospital mortality (``hospitaldischargestatus``).
    """
    _check_options(granularity)
    if not versions or set(versions) - {9, 10}:
        raise ConfigError(f"ICD versions must be a non-empty subset of (9, 10), got {versions}.")
    label = source_name(source, name)
    frame = read_table(source, label, required=("patientunitstayid", "icd9code"), limits=limits)
    _require_ids(frame, ("patientunitstayid",), label)
    notes: list[str] = []
    cells = frame[["patientunitstayid", "icd9code"]].dropna()
    tokens = cells.assign(code=cells["icd9code"].str.split(",")).explode("code")
    tokens["code"] = tokens["code"].str.strip().str.upper()
    tokens = tokens[tokens["code"] != ""]
    kinds = tokens["code"].map(icd.classify_dotted)
    unknown = tokens.loc[kinds.isna(), "code"]
    if len(unknown):
        notes.append(
            f"{len(unknown)} code token(s) were neither ICD-9 nor ICD-10, e.g. {_examples(unknown, 3)}."
        )
    keep = kinds.isin(versions)
    tokens, kinds = tokens[keep], kinds[keep].astype(int)
    if tokens.empty:
        raise CohortError(
            f"no ICD-{'/'.join(map(str, versions))} codes in column 'icd9code'",
            source=label,
            column="icd9code",
        )
    parts = []
    for v in sorted(set(kinds)):
        coded = icd.coarsen(tokens.loc[kinds == v, "code"].map(icd.normalise), v, granularity)
        parts.append(f"ICD{v}:" + coded if len(versions) > 1 else coded)
    codes = pd.concat(parts)
    tokens = tokens.loc[codes.index.unique()]
    tokens = tokens.assign(final=codes.groupby(level=0).agg(list)).explode("final")
    stays = tokens["patientunitstayid"].str.strip()
    patients = stays
    labels = None
    label_name = None
    label_classes: tuple[str, ...] = ()
    if patient_table is not None:
        patients, labels = _eicu_patients(stays, patient_table, patient_table_name, limits, notes)
        label_name = "hospital_mortality"
        label_classes = ("alive", "expired")
    else:
        notes.append("Without the patient table each stay counts as its own patient in the split.")
    return build_code_cohort(
        record_keys=stays,
        patient_keys=patients,
        codes=tokens["final"],
        name=f"eICU diagnoses ({label}, {granularity})",
        system="/".join(f"ICD-{v}" for v in sorted(versions)),
        granularity=granularity,
        source=f"eICU diagnosis: {label}",
        notes=notes,
        labels=labels,
        label_name=label_name,
        label_classes=label_classes,
    )


def _eicu_patients(
    stays: pd.Series,
    patient_table: Source,
    table_name: str | None,
    limits: InputLimits,
    notes: list[str],
) -> tuple[pd.Series, pd.Series]:
    label = source_name(patient_table, table_name)
    table = read_table(
        patient_table,
        label,
        required=("patientunitstayid", "uniquepid", "hospitaldischargestatus"),
        limits=limits,
    )
    table["patientunitstayid"] = table["patientunitstayid"].str.strip()
    if table["patientunitstayid"].duplicated().any():
        dup = table.loc[table["patientunitstayid"].duplicated(), "patientunitstayid"].iloc[0]
        raise CohortError(
            f"stay {dup} appears more than once", source=label, column="patientunitstayid"
        )
    table = table.set_index("patientunitstayid")
    missing = ~stays.isin(table.index)
    if missing.any():
        raise CohortError(
            f"{stays[missing].nunique()} stay(s) of the diagnosis table are not in the patient table, "
            f"e.g. {_examples(stays[missing], 3)}",
            source=label,
        )
    patients = table["uniquepid"].reindex(stays.to_numpy())
    patients.index = stays.index
    status = table["hospitaldischargestatus"].str.strip().str.lower()
    labels = status.map({"alive": 0, "expired": 1})
    unknown = int(labels.reindex(stays.unique()).isna().sum())
    if unknown:
        notes.append(f"{unknown} stay(s) have no hospital discharge status (label unknown).")
    return patients, labels.fillna(-1).astype(np.int64)


def _require_ids(frame: pd.DataFrame, columns: tuple[str, ...], label: str) -> None:
    for col in columns:
        blank = frame[col].isna() | (frame[col].str.strip() == "")
        refuse_first_row(blank, "identifier is empty", label, col)
