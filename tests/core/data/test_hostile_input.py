"""Property-based: whatever bytes arrive, loaders raise only the core's typed errors (or load)."""

import gzip

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.formats import FORMATS, NamedInput, load_cohort
from core.errors import CoreError
from tests.conftest import EICU_DIAGNOSIS, MIMIC3_DIAGNOSES, MIMIC4_DIAGNOSES, PHYSIONET_OUTCOMES

SEEDS = {
    "eicu_diagnosis": ("diagnosis", EICU_DIAGNOSIS.encode()),
    "mimic3_diagnoses": ("table", MIMIC3_DIAGNOSES.encode()),
    "mimic4_diagnoses": ("table", MIMIC4_DIAGNOSES.encode()),
    "wide_table": ("table", b"id,age,sex\na,54,F\nb,61,M\nc,70,F\n"),
    "long_timeseries": ("table", b"id,time,variable,value\na,1,HR,80\na,2,HR,90\nb,1,HR,70\n"),
    "physionet2012": ("records", b""),
}
HOSTILE_CELLS = [
    "=cmd|' /C calc'!A0",
    "+1+1",
    "@SUM(1)",
    "NaN",
    "inf",
    "-inf",
    "\u202e\u0000",
    "é,ü",
    '"',
    "1e309",
    "",
]


# Single-table record formats; multi-file formats are fuzzed beside their loaders
# (test_visits.py, test_eicu_stays.py).
RECORD_FORMATS = [
    f
    for f, spec in FORMATS.items()
    if spec.kind == "records" and sum(s.required for s in spec.inputs) == 1
]


def load(format_id: str, slot: str, data: bytes) -> None:
    try:
        load_cohort(format_id, {slot: NamedInput("upload.csv", data)})
    except CoreError:
        pass


@pytest.mark.parametrize("format_id", RECORD_FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048))
def test_random_bytes_raise_only_typed_errors(format_id, data):
    slot, _ = SEEDS[format_id]
    load(format_id, slot, data)
    load(format_id, slot, gzip.compress(data))


@pytest.mark.parametrize("format_id", [f for f in RECORD_FORMATS if f != "physionet2012"])
@settings(max_examples=60, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=400),
    flip=st.integers(min_value=0, max_value=400),
    cell=st.sampled_from(HOSTILE_CELLS),
)
def test_mutated_valid_tables_raise_only_typed_errors(format_id, cut, flip, cell):
    slot, seed = SEEDS[format_id]
    text = seed.decode()
    lines = text.splitlines()
    # replace one cell of one data row with a hostile value, then truncate and flip a byte
    row = 1 + flip % (len(lines) - 1)
    cells = lines[row].split(",")
    cells[cut % len(cells)] = cell
    lines[row] = ",".join(cells)
    mutated = ("\n".join(lines) + "\n").encode()
    load(format_id, slot, mutated)
    load(format_id, slot, mutated[: len(mutated) - cut % len(mutated)])
    flipped = bytearray(mutated)
    flipped[flip % len(flipped)] ^= 0x5A
    load(format_id, slot, bytes(flipped))


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=1024))
def test_physionet_outcomes_garbage(physionet_tar_bytes, data):
    try:
        load_cohort(
            "physionet2012",
            {
                "records": NamedInput("set-a.tar.gz", physionet_tar_bytes),
                "outcomes": NamedInput("o.txt", data),
            },
        )
    except CoreError:
        pass


@pytest.fixture(scope="module")
def physionet_tar_bytes():
    from tests.conftest import PHYSIONET_RECORDS, make_tar_gz, record_text

    return make_tar_gz(
        {f"set-a/{rid}.txt": record_text(rows) for rid, rows in PHYSIONET_RECORDS.items()}
    )


def test_outcomes_fixture_is_valid(physionet_tar_bytes):
    cohort = load_cohort(
        "physionet2012",
        {
            "records": NamedInput("a.tgz", physionet_tar_bytes),
            "outcomes": NamedInput("o.txt", PHYSIONET_OUTCOMES.encode()),
        },
    )
    assert cohort.labels.tolist() == [0, 0, 1]


@settings(max_examples=60, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=200),
    flip=st.integers(min_value=0, max_value=200),
    cell=st.sampled_from(HOSTILE_CELLS),
)
def test_hostile_static_table_beside_a_valid_series(cut, flip, cell):
    """The long format's optional static table: a hostile cell, truncation or a flipped byte."""
    series = SEEDS["long_timeseries"][1]
    lines = ["id,age,unit,died", "a,54,medical,0", "b,61,surgical,1", "z,70,medical,0"]
    row = 1 + flip % 3
    cells = lines[row].split(",")
    cells[cut % 4] = cell
    lines[row] = ",".join(cells)
    static = ("\n".join(lines) + "\n").encode()
    flipped = bytearray(static)
    flipped[flip % len(flipped)] ^= 0x5A
    for data in (static, static[: len(static) - cut % len(static)], bytes(flipped)):
        try:
            cohort = load_cohort(
                "long_timeseries",
                {"table": NamedInput("s.csv", series), "static": NamedInput("st.csv", data)},
                {"static_id_column": "id", "label_column": "died"},
            )
        except CoreError:
            continue
        assert cohort.temporal.values.shape[0] == cohort.n_records == len(cohort.static)
