"""eICU unit stays (static + vitalAperiodic series): hand-made tables with known answers, and the
demo's exact counts when ../shared/data is present."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.eicu_stays import APACHE_BINARY, APACHE_NUMERIC, load_eicu_stays
from core.data.formats import NamedInput, load_cohort
from core.errors import CohortError, CoreError
from core.flexgen.encoding import modality_presence
from tests.conftest import shared_path

PATIENT = (
    "patientunitstayid,uniquepid,gender,age,admissionheight,admissionweight,unittype,"
    "hospitaldischargestatus\n"
    "10,p1,Female,> 89,160,55.5,MICU,Alive\n"
    "11,p1,Female,> 89,160,,MICU,Expired\n"
    "12,p2,Male,45,180,90,SICU,\n"
)
VITALS = (
    "vitalaperiodicid,patientunitstayid,observationoffset,noninvasivesystolic,"
    "noninvasivediastolic,noninvasivemean\n"
    "1,10,5,120,80,93\n"
    "2,10,50,130,70,90\n"  # same hour as the row above: averaged
    "3,10,130,,60,\n"  # hour 2, systolic and mean missing
    "4,10,-30,100,50,70\n"  # before unit admission: outside the window
    "5,11,1500,100,50,70\n"  # after 24 h: outside the window
    "6,99,10,100,50,70\n"  # a stay not in the patient table
)


def _apache() -> bytes:
    header = ",".join(("apacheapsvarid", "patientunitstayid", *APACHE_BINARY, *APACHE_NUMERIC))
    row = ["1", "12", *(["1"] * len(APACHE_BINARY)), *(["-1"] * len(APACHE_NUMERIC))]
    row[len(APACHE_BINARY) + 2 + APACHE_NUMERIC.index("meanbp")] = "65"
    return f"{header}\n{','.join(row)}\n".encode()


def test_static_series_and_labels_with_known_values() -> None:
    c = load_eicu_stays(PATIENT.encode(), VITALS.encode(), apache_aps=_apache())
    assert list(c.record_ids) == ["10", "11", "12"] and list(c.patient_ids) == ["p1", "p1", "p2"]
    assert list(c.labels) == [0, 1, -1]
    assert c.static["age"].tolist() == [90, 90, 45]  # "> 89" top-coded at 90
    assert c.static["gender"].tolist() == [0, 0, 1]
    assert np.isnan(c.static.loc[1, "admissionweight"])
    # APACHE's -1 is "not measured"; stays without an APACHE row are missing throughout.
    assert c.static.loc[2, "apache_meanbp"] == 65 and c.static.loc[2, "apache_vent"] == 1
    assert np.isnan(c.static.loc[2, "apache_ph"]) and c.static.iloc[0, 5:].isna().all()
    t = c.temporal
    assert t.values.shape == (3, 24, 3) and t.variables[0] == "noninvasivesystolic"
    np.testing.assert_allclose(t.values[0, 0], [125, 75, 91.5])
    assert t.mask[0, 2].tolist() == [False, True, False] and t.values[0, 2, 1] == 60
    has_s, has_t = modality_presence(c)
    assert has_s.all() and has_t.tolist() == [True, False, False]
    assert any("not in the patient table" in n for n in c.notes)


def test_bad_offset_names_its_line() -> None:
    bad = VITALS.replace("1,10,5,", "1,10,soon,")
    with pytest.raises(CohortError, match="line 2.*observationoffset|observationoffset.*line 2"):
        load_eicu_stays(PATIENT.encode(), bad.encode())


def test_demo_counts_exactly() -> None:
    folder = shared_path("eicu-demo")
    files = {
        "patient": "patient",
        "vital_aperiodic": "vitalAperiodic",
        "apache_aps": "apacheApsVar",
    }
    inputs = {k: NamedInput(f"{v}.csv.gz", folder / f"{v}.csv.gz") for k, v in files.items()}
    c = load_cohort("eicu_stays", inputs)
    has_s, has_t = modality_presence(c)
    assert (c.n_records, int(has_t.sum()), len(set(c.patient_ids))) == (2520, 2311, 1841)
    assert int((c.labels == 1).sum()) == 212 and c.static.shape[1] == 28


def _load_or_typed_error(patient: bytes, vitals: bytes, apache: bytes | None) -> None:
    try:
        load_eicu_stays(patient, vitals, apache_aps=apache)
    except CoreError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=2048),
    slot=st.sampled_from(("patient", "vitals", "apache")),
    zipped=st.booleans(),
)
def test_random_bytes_in_any_table_raise_only_typed_errors(data, slot, zipped) -> None:
    data = gzip.compress(data) if zipped else data
    tables = {"patient": PATIENT.encode(), "vitals": VITALS.encode(), "apache": _apache()}
    tables[slot] = data
    _load_or_typed_error(tables["patient"], tables["vitals"], tables["apache"])


@settings(max_examples=60, deadline=None)
@given(
    slot=st.sampled_from(("patient", "vitals")),
    row=st.integers(min_value=1, max_value=6),
    col=st.integers(min_value=0, max_value=7),
    cell=st.sampled_from(("=cmd|' /C calc'!A0", "nan", "inf", "1e309", "\x00", "-", "")),
    cut=st.integers(min_value=0, max_value=300),
)
def test_hostile_cells_and_truncation_raise_only_typed_errors(slot, row, col, cell, cut) -> None:
    text = PATIENT if slot == "patient" else VITALS
    lines = text.splitlines()
    cells = lines[min(row, len(lines) - 1)].split(",")
    cells[col % len(cells)] = cell
    lines[min(row, len(lines) - 1)] = ",".join(cells)
    mutated = ("\n".join(lines) + "\n").encode()
    mutated = mutated[: len(mutated) - cut % len(mutated)]
    patient, vitals = (
        (mutated, VITALS.encode()) if slot == "patient" else (PATIENT.encode(), mutated)
    )
    _load_or_typed_error(patient, vitals, None)
