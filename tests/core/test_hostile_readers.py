"""Property-based hostile input through every public reader: whatever arrives (random bytes, a
valid file truncated, bit-flipped or given hostile cells, a renamed or dropped column, nested
JSON), nothing but a ``CoreError`` escapes. Readers: every cohort format of
``core.data.formats.FORMATS`` (each slot), the radiograph reader, the CXR labs-window reader (as
bytes and as a table of mixed cells), the checkpoint manifest, the model file import, and the
release verifier. A few examples per reader in the quick tier; 2,500 cases in the slow one."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.checkpoints import parse_manifest
from core.cxr.ehr_window import EHRVocabulary, read_ehr_window, window_from_frame
from core.data.formats import FORMATS, NamedInput, load_cohort
from core.data.images import read_radiograph
from core.errors import CoreError
from core.release.signing import verify_manifest
from core.store import ModelStore
from tests.conftest import EICU_DIAGNOSIS, EICU_PATIENT, MIMIC3_DIAGNOSES, PHYSIONET_OUTCOMES

VOCAB = EHRVocabulary(("crp", "wbc"), (1.0, 7.0), (2.0, 3.0))
SEED_TABLES = [
    b"hours,variable,value\n0,crp,12\n3.5,wbc,9.1\n7,crp,11\n",
    b"hour,crp,wbc\n0,12,9\n4,,8.5\n",
    EICU_DIAGNOSIS.encode(),
    EICU_PATIENT.encode(),
    MIMIC3_DIAGNOSES.encode(),
    PHYSIONET_OUTCOMES.encode(),
    b"id,time,variable,value\na,1,HR,80\na,2,HR,90\nb,1,HR,70\n",
    b"subject_id,time,code,numeric_value\n1,2020-01-01,ICD9//401.9,\n",
]
HOSTILE_CELLS = ["=cmd|' /C calc'!A0", "NaN", "-inf", "1e309", "\u202e\u0000", '"', "", "é,ü"]
MANIFEST = {
    "format_version": 1,
    "model_id": "m",
    "family": "ehrdiff",
    "sha256": "0" * 64,
    "config": {"units": [16]},
    "data_card": {"source": "toy"},
    "metrics": {},
}

# one (reader, input) pair per public reader; each reader turns bytes into its object
SLOTS = [(f, s.key) for f, spec in FORMATS.items() for s in spec.inputs]


def _cohort(format_id: str, slot: str):
    def read(data: bytes) -> None:
        inputs = {slot: NamedInput("upload.csv", data)}
        for other in FORMATS[format_id].inputs:  # required companions get a valid-looking seed
            if other.required and other.key != slot:
                inputs[other.key] = NamedInput("other.csv", SEED_TABLES[2])
        load_cohort(format_id, inputs)

    return read


def _import(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ModelStore(tmp).import_zip(data, {"ehrdiff"})


def _verify(data: bytes) -> None:
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        return  # the callers (CLI, Ledger page) reject non-JSON before verifying
    if isinstance(manifest, dict):
        assert not verify_manifest(manifest).ok  # never verified without a trusted key


READERS = {
    **{f"cohort {f}:{s}": _cohort(f, s) for f, s in SLOTS},
    "radiograph": lambda d: read_radiograph(d, "upload.png"),
    "ehr window": lambda d: read_ehr_window(d, VOCAB, "window.csv"),
    "manifest": lambda d: parse_manifest(d, "upload"),
    "model file": _import,
    "release verify": _verify,
}


def mutate(seed: bytes, cut: int, flips: list[tuple[int, int]], cell: str, row: int) -> bytes:
    """``seed`` with one cell replaced, truncated and bit-flipped."""
    lines = seed.decode("utf-8", "replace").splitlines()
    if len(lines) > 1:
        r = 1 + row % (len(lines) - 1)
        cells = lines[r].split(",")
        cells[row % len(cells)] = cell
        lines[r] = ",".join(cells)
    if len(lines) > 0 and row % 3 == 0:  # rename or drop a column of the header
        head = lines[0].split(",")
        head[row % len(head)] = "renamed" if row % 2 else ""
        lines[0] = ",".join(head)
    data = bytearray(("\n".join(lines) + "\n").encode())
    data = data[: max(1, len(data) - cut % max(len(data), 1))]
    for pos, byte in flips:
        data[pos % len(data)] = byte
    return bytes(data)


hostile_bytes = st.one_of(
    st.binary(max_size=2048),
    st.builds(
        mutate,
        st.sampled_from(SEED_TABLES),
        st.integers(0, 400),
        st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
        st.sampled_from(HOSTILE_CELLS),
        st.integers(0, 50),
    ),
    st.builds(  # manifest-shaped JSON with wrong types or deep nesting
        lambda key, value, depth: (
            json.dumps({**MANIFEST, key: value}).encode()[:-1]
            + (b', "x": ' + b"[" * depth + b"]" * depth + b"}")
        ),
        st.sampled_from(sorted(MANIFEST) + ["signature", "manifest_sha256"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids),
            max_leaves=6,
        ),
        st.sampled_from([0, 40, 5000]),
    ),
)

mixed_cells = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.booleans(),
)
hostile_frames = st.builds(
    lambda cols, rows: (
        pd.DataFrame([r[: len(cols)] for r in rows], columns=cols[: len(rows[0])])
        if rows and rows[0]
        else pd.DataFrame(columns=cols)
    ),
    st.lists(
        st.sampled_from(["hours", "hour", "variable", "value", "crp", "wbc", 0, "HOURS ", "name"]),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.lists(mixed_cells, min_size=5, max_size=5), max_size=6),
)


def only_typed_errors(reader, data) -> None:
    try:
        reader(data)
    except CoreError:
        pass


def _run(examples: int):
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    @given(reader=st.sampled_from(sorted(READERS)), data=hostile_bytes)
    def bytes_run(reader: str, data: bytes) -> None:
        only_typed_errors(READERS[reader], data)

    @settings(max_examples=max(examples // 5, 5), deadline=None, database=None)
    @given(frame=hostile_frames)
    def frames_run(frame: pd.DataFrame) -> None:
        only_typed_errors(lambda f: window_from_frame(f, VOCAB, "window"), frame)

    bytes_run()
    frames_run()


def test_hostile_input_through_every_reader_raises_only_typed_errors():
    _run(40)


@pytest.mark.slow
def test_hostile_input_through_every_reader_at_scale():
    _run(2500)  # + 500 hostile tables into the labs-window reader
