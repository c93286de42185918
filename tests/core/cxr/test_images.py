"""The radiograph reader: formats, DICOM photometry and windowing, refusals, no metadata leaks."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from core.data.images import fit_square, read_radiograph, to_png_bytes
from core.errors import ImageError
from tests.core.cxr.fixtures import SECRET_ID, SECRET_NAME, dicom_bytes, phantom, png_bytes


def test_png_8bit_16bit_and_rgb_agree() -> None:
    img = phantom(96)
    a = read_radiograph(png_bytes(img), "a.png")
    b = read_radiograph(png_bytes(img, "I;16"), "b.png")
    c = read_radiograph(png_bytes(img, "RGB"), "c.png")
    assert a.kind == "png" and a.shape == (96, 96)
    assert np.corrcoef(a.pixels.ravel(), b.pixels.ravel())[0, 1] > 0.99
    assert np.abs(a.pixels - c.pixels).max() < 1e-6
    assert not c.notes  # identical channels: no colour warning


def test_dicom_monochrome1_is_inverted_and_metadata_never_escapes(caplog) -> None:
    img = phantom(96)
    caplog.set_level(logging.DEBUG)
    out = read_radiograph(dicom_bytes(img, photometric="MONOCHROME1"), "scan.dcm")
    ref = read_radiograph(dicom_bytes(img, photometric="MONOCHROME2"), "scan2.dcm")
    assert out.kind == "dicom"
    assert any("MONOCHROME1" in n for n in out.notes)
    # after inversion the lungs are dark as in the MONOCHROME2 file
    assert np.abs(out.pixels - ref.pixels).max() < 1e-3
    assert out.pixels[48, 30] < out.pixels[5, 48]
    everything = repr(out) + " ".join(out.notes) + caplog.text + to_png_bytes(out.pixels).hex()
    for secret in (SECRET_NAME, SECRET_ID, "Secret General", "19500101"):
        assert secret not in everything
        assert secret.encode().hex() not in everything


def test_dicom_window_is_applied() -> None:
    img = phantom(96)
    narrow = read_radiograph(
        dicom_bytes(img, photometric="MONOCHROME2", window=(820, 400)), "w.dcm"
    )
    full = read_radiograph(dicom_bytes(img, photometric="MONOCHROME2"), "f.dcm")
    assert any("window" in n for n in narrow.notes)
    # a narrow window around the lungs saturates the bright body
    assert (narrow.pixels >= 0.999).mean() > (full.pixels >= 0.999).mean() + 0.3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not an image at all", "not a readable image"),
        (png_bytes(phantom(96))[:200], "corrupt or truncated"),
        (dicom_bytes(phantom(64), frames=3), "multi-frame"),
        (dicom_bytes(phantom(64), modality="CT"), "CT series"),
        (png_bytes(np.zeros((1, 1), np.float32)), "at least 32 pixels"),
        (png_bytes(np.full((64, 64), 0.5, np.float32)), "blank"),
    ],
)
def test_bad_images_are_refused_with_a_named_reason(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message) as err:
        read_radiograph(data, "upload.bin")
    assert "upload.bin" in str(err.value)


def test_huge_dimensions_are_refused_before_decoding() -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buf, format="PNG")  # compresses to ~400 KB
    with pytest.raises(ImageError, match="megapixels"):
        read_radiograph(buf.getvalue(), "huge.png")


def test_fit_square_pad_and_crop_keep_aspect() -> None:
    wide = np.ones((50, 100), np.float32)
    padded = fit_square(wide, 64, "pad")
    cropped = fit_square(wide, 64, "crop")
    assert padded.shape == cropped.shape == (64, 64)
    assert padded[0].max() == 0 and padded[32].min() > 0.99  # letterbox bars top and bottom
    assert cropped.min() > 0.99
