"""Property-based: whatever bytes arrive as an X-ray or an EHR window, only typed errors escape."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.cxr.ehr_window import EHRVocabulary, read_ehr_window
from core.data.images import read_radiograph
from core.errors import CoreError
from tests.core.cxr.fixtures import dicom_bytes, phantom, png_bytes

SEEDS = [png_bytes(phantom(48)), png_bytes(phantom(48), "I;16"), dicom_bytes(phantom(48))]
VOCAB = EHRVocabulary(("crp", "po2"), (50.0, 70.0), (80.0, 30.0))
HOSTILE_CELLS = ["=cmd|' /C calc'!A0", "NaN", "inf", "-1e309", "\u202e", "é", "", "1" * 400]


def read(data: bytes) -> None:
    try:
        image = read_radiograph(data, "upload.bin")
    except CoreError:
        return
    assert image.pixels.ndim == 2 and np.isfinite(image.pixels).all()
    assert image.pixels.min() >= 0 and image.pixels.max() <= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    read(data)
    read(b"\0" * 128 + b"DICM" + data)  # claims to be DICOM


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    cut=st.integers(0, 6000),
    flips=st.lists(st.tuples(st.integers(0, 6000), st.integers(0, 255)), max_size=8),
)
def test_truncated_and_bit_flipped_images(
    seed: int, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(SEEDS[seed][: max(cut, 1)])
    for pos, byte in flips:
        if pos < len(data):
            data[pos] = byte
    read(bytes(data))


@settings(max_examples=100, deadline=None)
@given(
    hours=st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6)),
        min_size=1,
        max_size=6,
    ),
    variable=st.sampled_from(["crp", "PO2", "unknown", "=HYPERLINK(1)", "ﬁ"]),
    cell=st.sampled_from(HOSTILE_CELLS),
    wide=st.booleans(),
)
def test_hostile_ehr_windows(hours: list, variable: str, cell: str, wide: bool) -> None:
    if wide:
        lines = ["hour,crp,po2"] + [f"{h},{cell},1" for h in hours]
    else:
        lines = ["hours,variable,value"] + [f"{h},{variable},{cell}" for h in hours]
    try:
        w = read_ehr_window("\n".join(lines).encode(), VOCAB, "w.csv")
    except CoreError:
        return
    assert (w.frame["hours"] >= 0).all() and np.isfinite(w.frame["value"]).all()
    assert set(w.frame["variable"]) <= set(VOCAB.variables)
