"""Catalogue of supported cohort formats: which files each needs and the loader that reads them.

Pages render uploaders from ``inputs`` and call :func:`load_cohort`; they never branch on formats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any, Literal

from core.data.cohort import Cohort, CohortOrigin
from core.data.diagnoses import load_eicu_diagnoses, load_mimic3_diagnoses, load_mimic4_diagnoses
from core.data.eicu_stays import load_eicu_stays
from core.data.io import Source
from core.data.physionet2012 import load_physionet2012
from core.data.tables import join_static, load_long_timeseries, load_wide_table
from core.data.visit_loaders import load_eicu_visits, load_meds, load_mimic_visits
from core.data.visits import VisitCohort
from core.errors import CohortError, ConfigError
from core.progress import ProgressCallback

TABLE_TYPES = ("csv", "gz", "parquet", "zip", "txt", "tsv")


@dataclass(frozen=True)
class InputSlot:
    key: str
    label: str
    required: bool
    extensions: tuple[str, ...]
    help: str = ""


@dataclass(frozen=True)
class NamedInput:
    """A user file: its display name and its content (bytes, buffer or server path)."""

    name: str
    source: Source


@dataclass(frozen=True)
class CohortFormat:
    id: str
    title: str
    description: str
    inputs: tuple[InputSlot, ...]
    loader: Callable[..., Cohort | VisitCohort]
    # "records": one row per record (a Cohort); "visits": patients with visit sequences.
    kind: Literal["records", "visits"] = "records"
    # The public dataset this format usually carries; copied into model cards trained on it.
    data_card: dict[str, str] = field(
        default_factory=lambda: {"dataset": "user-supplied", "licence": "as supplied"}
    )


def _physionet(
    inputs: Mapping[str, NamedInput], options: dict[str, Any], callback: ProgressCallback | None
) -> Cohort:
    rec, out = inputs["records"], inputs.get("outcomes")
    return load_physionet2012(
        rec.source,
        None if out is None else out.source,
        name=rec.name,
        outcomes_name=None if out is None else out.name,
        callback=callback,
        **options,
    )


def _long_with_static(
    inputs: Mapping[str, NamedInput], options: dict[str, Any], callback: ProgressCallback | None
) -> Cohort:
    """Series from the long table; with a static table, joined on the record id. Options named
    ``static_id_column``, ``label_column`` and ``static_types`` go to the static table."""
    options = dict(options)
    static_opts = {
        "id_column": options.pop("static_id_column", None),
        "label_column": options.pop("label_column", None),
        "types": options.pop("static_types", None),
    }
    series = inputs["table"]
    cohort = load_long_timeseries(series.source, name=series.name, **options)
    static = inputs.get("static")
    if static is None:
        return cohort
    table = load_wide_table(static.source, name=static.name, **static_opts)
    return join_static(cohort, table, name=f"{series.name} + {static.name}")


def _eicu(
    inputs: Mapping[str, NamedInput], options: dict[str, Any], callback: ProgressCallback | None
) -> Cohort:
    dx, pt = inputs["diagnosis"], inputs.get("patient")
    return load_eicu_diagnoses(
        dx.source,
        patient_table=None if pt is None else pt.source,
        name=dx.name,
        patient_table_name=None if pt is None else pt.name,
        **options,
    )


def _single(fn: Callable[..., Cohort]) -> Callable[..., Cohort]:
    def load(
        inputs: Mapping[str, NamedInput], options: dict[str, Any], callback: ProgressCallback | None
    ) -> Cohort:
        table = inputs["table"]
        return fn(table.source, name=table.name, **options)

    return load


def _meds(
    inputs: Mapping[str, NamedInput], options: dict[str, Any], callback: ProgressCallback | None
) -> VisitCohort:
    data = inputs["data"]
    return load_meds(data.source, name=data.name, **options)


def _optional_sources(
    inputs: Mapping[str, NamedInput], slots: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str]]:
    sources = {k: inputs[k].source if k in inputs else None for k in slots}
    return sources, {k: v.name for k, v in inputs.items()}


def _mimic_visits(
    inputs: Mapping[str, NamedInput], options: dict[str, Any], callback: ProgressCallback | None
) -> VisitCohort:
    src, names = _optional_sources(
        inputs, ("admissions", "diagnoses", "procedures", "prescriptions")
    )
    return load_mimic_visits(
        src["admissions"],
        src["diagnoses"],
        procedures=src["procedures"],
        prescriptions=src["prescriptions"],
        names=names,
        **options,
    )


def _eicu_visits(
    inputs: Mapping[str, NamedInput], options: dict[str, Any], callback: ProgressCallback | None
) -> VisitCohort:
    src, names = _optional_sources(inputs, ("patient", "diagnosis", "admission_dx", "past_history"))
    return load_eicu_visits(
        src["patient"],
        src["diagnosis"],
        admission_dx=src["admission_dx"],
        past_history=src["past_history"],
        names=names,
        **options,
    )


def _eicu_stays(
    inputs: Mapping[str, NamedInput], options: dict[str, Any], callback: ProgressCallback | None
) -> Cohort:
    src, names = _optional_sources(inputs, ("patient", "vital_aperiodic", "apache_aps"))
    return load_eicu_stays(
        src["patient"], src["vital_aperiodic"], apache_aps=src["apache_aps"], names=names, **options
    )


EICU_CARD = {
    "dataset": "eICU Collaborative Research Database demo v2.0.1",
    "licence": "Open Database License (ODbL) v1.0",
    "attribution": "Pollard TJ, Johnson AEW, Raffa JD, Celi LA, Mark RG, Badawi O. The eICU "
    "Collaborative Research Database. Sci Data 2018;5:180178. eICU-CRD demo on PhysioNet.",
}
PARQUET_TYPES = ("parquet", "zip", "tar", "gz", "tgz")

FORMATS: dict[str, CohortFormat] = {
    f.id: f
    for f in (
        CohortFormat(
            "physionet2012",
            "PhysioNet/CinC 2012",
            "ICU stays, 48 h of vitals and labs: the official set-a/b/c .tar.gz (or a .zip of it) "
            "plus the matching Outcomes file for the in-hospital death label.",
            (
                InputSlot(
                    "records",
                    "Records archive (set-a.tar.gz or .zip)",
                    True,
                    ("gz", "tgz", "tar", "zip"),
                ),
                InputSlot(
                    "outcomes", "Outcomes-a.txt (optional, gives the label)", False, ("txt", "csv")
                ),
            ),
            _physionet,
            data_card={
                "dataset": "PhysioNet/Computing in Cardiology Challenge 2012",
                "licence": "PhysioNet open access",
                "attribution": "Silva I, Moody G, Scott DJ, Celi LA, Mark RG. Predicting In-Hospital Mortality of "
                "ICU Patients: The PhysioNet/Computing in Cardiology Challenge 2012. CinC 2012;39:245-248.",
            },
        ),
        CohortFormat(
            "eicu_diagnosis",
            "eICU diagnosis table",
            "eICU-CRD `diagnosis` table (patientunitstayid, icd9code). Add the `patient` table to group "
            "stays by patient (uniquepid) and to label hospital mortality.",
            (
                InputSlot("diagnosis", "diagnosis.csv(.gz)", True, TABLE_TYPES),
                InputSlot("patient", "patient.csv(.gz) (optional)", False, TABLE_TYPES),
            ),
            _eicu,
            data_card=EICU_CARD,
        ),
        CohortFormat(
            "eicu_stays",
            "eICU stays with vital signs (static + series)",
            "One record per ICU unit stay: the `patient` table (age, gender, height, weight, unit "
            "type) and optionally APACHE day-one physiology (`apacheApsVar`) as the static part, "
            "`vitalAperiodic` non-invasive blood pressure as hourly series over the first 24 h. "
            "Stays are grouped by uniquepid and labelled with hospital mortality.",
            (
                InputSlot("patient", "patient.csv(.gz)", True, TABLE_TYPES),
                InputSlot("vital_aperiodic", "vitalAperiodic.csv(.gz)", True, TABLE_TYPES),
                InputSlot("apache_aps", "apacheApsVar.csv(.gz) (optional)", False, TABLE_TYPES),
            ),
            _eicu_stays,
            data_card=EICU_CARD,
        ),
        CohortFormat(
            "mimic3_diagnoses",
            "MIMIC-III DIAGNOSES_ICD",
            "SUBJECT_ID, HADM_ID, ICD9_CODE: one record per admission or per patient.",
            (InputSlot("table", "DIAGNOSES_ICD.csv(.gz)", True, TABLE_TYPES),),
            _single(load_mimic3_diagnoses),
        ),
        CohortFormat(
            "mimic4_diagnoses",
            "MIMIC-IV diagnoses_icd",
            "subject_id, hadm_id, icd_code, icd_version (ICD-9 and ICD-10).",
            (InputSlot("table", "diagnoses_icd.csv(.gz)", True, TABLE_TYPES),),
            _single(load_mimic4_diagnoses),
        ),
        CohortFormat(
            "wide_table",
            "Wide table (one row per patient)",
            "CSV, gzip CSV or Parquet with one row per record; column types are inferred and can be overridden.",
            (InputSlot("table", "Table (.csv, .csv.gz, .parquet)", True, TABLE_TYPES),),
            _single(load_wide_table),
        ),
        CohortFormat(
            "long_timeseries",
            "Long time series (id, time, variable, value)",
            "One observation per row, resampled onto a regular grid with an observation mask.",
            (
                InputSlot("table", "Table (.csv, .csv.gz, .parquet)", True, TABLE_TYPES),
                InputSlot(
                    "static",
                    "Static table, one row per record (optional)",
                    False,
                    TABLE_TYPES,
                    "Joined on the record id; records in only one file keep the other part missing.",
                ),
            ),
            _long_with_static,
        ),
        CohortFormat(
            "meds",
            "MEDS (visit sequences)",
            "Medical Event Data Standard: Parquet rows subject_id, time, code, numeric_value (one "
            "shard, or a zip/tar of data/*.parquet). Events become visits by a visit_id column, a "
            "visit-start code, or a time window; the code's prefix before '//' is its modality.",
            (
                InputSlot(
                    "data", "MEDS data (.parquet, or .zip/.tar.gz of shards)", True, PARQUET_TYPES
                ),
            ),
            _meds,
            kind="visits",
        ),
        CohortFormat(
            "mimic_visits",
            "MIMIC-III / MIMIC-IV admissions (visit sequences)",
            "One visit per admission: ADMISSIONS (subject_id, hadm_id, admittime) and DIAGNOSES_ICD; "
            "optional PROCEDURES_ICD and PRESCRIPTIONS as further modalities.",
            (
                InputSlot("admissions", "ADMISSIONS.csv(.gz)", True, TABLE_TYPES),
                InputSlot("diagnoses", "DIAGNOSES_ICD.csv(.gz)", True, TABLE_TYPES),
                InputSlot("procedures", "PROCEDURES_ICD.csv(.gz) (optional)", False, TABLE_TYPES),
                InputSlot("prescriptions", "PRESCRIPTIONS.csv(.gz) (optional)", False, TABLE_TYPES),
            ),
            _mimic_visits,
            kind="visits",
        ),
        CohortFormat(
            "eicu_visits",
            "eICU unit stays (visit sequences)",
            "One visit per ICU unit stay, grouped by uniquepid: the patient table gives the order and "
            "the gaps within a hospital stay; diagnosis, admissionDx and pastHistory are modalities.",
            (
                InputSlot("patient", "patient.csv(.gz)", True, TABLE_TYPES),
                InputSlot("diagnosis", "diagnosis.csv(.gz)", True, TABLE_TYPES),
                InputSlot("admission_dx", "admissionDx.csv(.gz) (optional)", False, TABLE_TYPES),
                InputSlot("past_history", "pastHistory.csv(.gz) (optional)", False, TABLE_TYPES),
            ),
            _eicu_visits,
            kind="visits",
            data_card=EICU_CARD,
        ),
    )
}


def load_cohort(
    format_id: str,
    inputs: Mapping[str, NamedInput],
    options: dict[str, Any] | None = None,
    callback: ProgressCallback | None = None,
) -> Cohort | VisitCohort:
    """Load a cohort of format ``format_id`` from ``inputs`` keyed by the format's slot keys: a
    :class:`Cohort` for "records" formats, a :class:`VisitCohort` for "visits" formats."""
    if format_id not in FORMATS:
        raise ConfigError(f"Unknown cohort format '{format_id}'; known: {', '.join(FORMATS)}.")
    fmt = FORMATS[format_id]
    missing = [s.label for s in fmt.inputs if s.required and s.key not in inputs]
    if missing:
        raise CohortError(f"{fmt.title} needs: {', '.join(missing)}.")
    cohort = fmt.loader(inputs, dict(options or {}), callback)
    origin = CohortOrigin(
        format_id,
        tuple((slot, PurePath(inputs[slot].name).name) for slot in sorted(inputs)),
        tuple(sorted((options or {}).items())),
    )
    return replace(cohort, origin=origin)
