"""eICU unit stays with a static part and a series: the FLEXGEN-EHR view of eICU.

Static part, one row per stay: the ``patient`` table's age, gender, admission height and weight
and unit type, plus (optional) the APACHE IV day-one physiology of ``apacheApsVar`` (worst values
of the first 24 h; eICU writes -1 where a variable was not measured). Series: ``vitalAperiodic``'s
non-invasive blood pressure on an hourly grid over the first ``n_steps`` hours of the unit stay
(``observationoffset`` is in minutes from unit admission). Stays without any reading in the
window keep an empty series (a missing modality); stays are grouped by ``uniquepid`` for the split
and labelled with hospital mortality (``hospitaldischargestatus``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.cohort import Cohort, FeatureSpec, TemporalData
from core.data.grid import GridSpec, to_grid
from core.data.io import DEFAULT_LIMITS, InputLimits, Source, read_table, source_name
from core.data.tables import _convert, refuse_first_row
from core.errors import CohortError, ConfigError

PATIENT_COLUMNS = {
    "age": "numeric",
    "gender": "binary",
    "admissionheight": "numeric",
    "admissionweight": "numeric",
    "unittype": "categorical",
}
PATIENT_UNITS = {"age": "years", "admissionheight": "cm", "admissionweight": "kg"}
APACHE_BINARY = ("intubated", "vent", "dialysis")
APACHE_NUMERIC = (
    "eyes", "motor", "verbal", "urine", "wbc", "temperature", "respiratoryrate", "sodium",
    "heartrate", "meanbp", "ph", "hematocrit", "creatinine", "albumin", "pao2", "pco2", "bun",
    "glucose", "bilirubin", "fio2",
)  # fmt: skip
VITALS = {"noninvasivesystolic": "mmHg", "noninvasivediastolic": "mmHg", "noninvasivemean": "mmHg"}
STAY = "patientunitstayid"


def _stays(frame: pd.DataFrame, label: str) -> pd.Series:
    ids = frame[STAY].astype(str).str.strip()
    refuse_first_row(
        (frame[STAY].isna() | (ids == "")).to_numpy(), "identifier is empty", label, STAY
    )
    return ids


def _patient_static(table: pd.DataFrame, label: str) -> tuple[dict, list[FeatureSpec]]:
    table = table.copy()
    # eICU writes ages above 89 as "> 89"; HIPAA's top code, kept as 90.
    table["age"] = table["age"].str.strip().replace({"> 89": "90"})
    gender = table["gender"].str.strip().str.lower()
    table["gender"] = gender.map({"male": "1", "female": "0"})  # other / unknown -> missing
    columns, specs = {}, []
    for col, kind in PATIENT_COLUMNS.items():
        columns[col], spec = _convert(table[col], kind, col, label)  # type: ignore[arg-type]
        desc = "1 = male, 0 = female" if col == "gender" else ""
        specs.append(
            FeatureSpec(spec.name, spec.kind, PATIENT_UNITS.get(col), spec.categories, desc)
        )
    return columns, specs


def _apache_static(
    source: Source, name: str | None, stays: pd.Index, limits: InputLimits
) -> tuple[dict, list[FeatureSpec], int]:
    label = source_name(source, name)
    frame = read_table(
        source, label, required=(STAY, *APACHE_BINARY, *APACHE_NUMERIC), limits=limits
    )
    frame[STAY] = _stays(frame, label)
    frame = frame.drop_duplicates(STAY).set_index(STAY).reindex(stays)
    columns, specs = {}, []
    for col in (*APACHE_BINARY, *APACHE_NUMERIC):
        text = frame[col].where(frame[col].str.strip() != "-1")  # eICU's "not measured"
        columns[f"apache_{col}"], spec = _convert(
            text.reset_index(drop=True), "binary" if col in APACHE_BINARY else "numeric", col, label
        )
        specs.append(
            FeatureSpec(f"apache_{col}", spec.kind, description="APACHE IV, worst of day one")
        )
    return columns, specs, int(frame[APACHE_NUMERIC[0]].notna().sum())


def load_eicu_stays(
    patient: Source,
    vital_aperiodic: Source,
    *,
    apache_aps: Source | None = None,
    n_steps: int = 24,
    names: dict[str, str] | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> Cohort:
    if not 1 <= n_steps <= 24 * 14:
        raise ConfigError("The series window must be 1 to 336 hours.")
    names = names or {}
    p_label = source_name(patient, names.get("patient"))
    table = read_table(
        patient,
        p_label,
        required=(STAY, "uniquepid", "hospitaldischargestatus", *PATIENT_COLUMNS),
        limits=limits,
    )
    stays = _stays(table, p_label)
    dup = stays.duplicated().to_numpy()
    refuse_first_row(dup, lambda row: f"stay {stays.iloc[row]} appears twice", p_label, STAY)
    static, specs = _patient_static(table.reset_index(drop=True), p_label)
    notes = []
    if apache_aps is not None:
        extra, extra_specs, n_apache = _apache_static(
            apache_aps, names.get("apache_aps"), pd.Index(stays), limits
        )
        static.update(extra)
        specs += extra_specs
        notes.append(f"{len(stays) - n_apache} stay(s) have no APACHE physiology row.")

    v_label = source_name(vital_aperiodic, names.get("vital_aperiodic"))
    vitals = read_table(
        vital_aperiodic, v_label, required=(STAY, "observationoffset", *VITALS), limits=limits
    )
    v_stays = _stays(vitals, v_label)
    minutes = pd.to_numeric(vitals["observationoffset"], errors="coerce").to_numpy(dtype=float)
    refuse_first_row(
        ~np.isfinite(minutes), "offset is not a finite number", v_label, "observationoffset"
    )
    position = pd.Index(stays).get_indexer(v_stays)
    unknown = position < 0
    if unknown.any():
        notes.append(
            f"{int(unknown.sum())} vital sign row(s) name a stay not in the patient table."
        )
    step = np.floor(minutes / 60).astype(np.int64)
    keep = ~unknown & (step >= 0) & (step < n_steps)
    order = np.argsort(minutes, kind="stable")
    sel = order[keep[order]]
    n_vars = len(VITALS)
    grids = []
    for col in VITALS:
        vals = pd.to_numeric(vitals[col], errors="coerce").to_numpy(dtype=float)
        bad = np.isnan(vals) & vitals[col].notna().to_numpy()
        refuse_first_row(
            bad,
            lambda row, c=col: f"expected a number, found {vitals[c].iloc[row]!r}",
            v_label,
            col,
        )
        grids.append(vals[sel])
    grid = to_grid(
        record_index=np.repeat(position[sel], n_vars),
        step_index=np.repeat(step[sel], n_vars),
        variable_index=np.tile(np.arange(n_vars), len(sel)),
        values=np.stack(grids, axis=1).reshape(-1),
        spec=GridSpec(len(stays), n_steps, n_vars, "mean"),
    )
    no_series = int((~grid.mask.any(axis=(1, 2))).sum())
    notes.append(
        f"{no_series} stay(s) have no non-invasive blood pressure in the first {n_steps} h."
    )
    if no_series == len(stays):
        raise CohortError(f"no vital sign inside the first {n_steps} h of any stay", source=v_label)
    status = table["hospitaldischargestatus"].str.strip().str.lower()
    labels = status.map({"alive": 0, "expired": 1}).fillna(-1).to_numpy(dtype=np.int64)
    record_ids = stays.to_numpy(dtype=object)
    return Cohort(
        name=f"eICU stays ({p_label} + {v_label})",
        record_ids=record_ids,
        patient_ids=table["uniquepid"].astype(str).str.strip().to_numpy(dtype=object),
        static=pd.DataFrame(static),
        static_features=tuple(specs),
        temporal=TemporalData(
            values=grid.values,
            mask=grid.mask,
            variables=tuple(VITALS),
            units=tuple(VITALS.values()),
            step_hours=1.0,
        ),
        labels=labels,
        label_name="hospital death",
        label_classes=("alive", "expired"),
        source=f"eICU patient + vitalAperiodic: {p_label}, {v_label}",
        notes=tuple(notes),
    )
