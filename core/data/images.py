"""Chest radiograph reading: PNG, JPEG and DICOM bytes to one normalised grayscale array.

Everything happens in memory. DICOM headers are read only for what the pixels need (photometric
interpretation, modality/VOI LUTs, frame count); nothing identifying is returned, logged or kept:
the result holds pixels and technical notes only.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.data.io import DEFAULT_LIMITS, InputLimits, Source, read_bytes, source_name
from core.errors import CohortError, ImageError

log = logging.getLogger(__name__)

MIN_SIDE = 32
MAX_PIXELS = 50_000_000  # ~7,000 x 7,000; radiographs are at most ~4,300 x 4,300
DICOM_MAGIC_OFFSET = 128
FitMode = Literal["pad", "crop"]
# Modalities a plain radiograph can carry; anything else (CT, MR, US...) is refused.
RADIOGRAPH_MODALITIES = {"CR", "DX", "DR", "RG", "OT", ""}


@dataclass(frozen=True)
class RadiographImage:
    """Grayscale pixels in [0, 1] (``[H, W]`` float32) plus technical notes, never metadata."""

    pixels: np.ndarray
    kind: Literal["png", "jpeg", "dicom", "image"]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


def _is_dicom(data: bytes) -> bool:
    return data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


def _check_size(height: int, width: int, label: str) -> None:
    if min(height, width) < MIN_SIDE:
        raise ImageError(
            f"the image is {width} x {height} pixels; a radiograph needs at least "
            f"{MIN_SIDE} pixels on each side",
            source=label,
        )
    if height * width > MAX_PIXELS:
        raise ImageError(
            f"the image is {width} x {height} pixels ({height * width / 1e6:.0f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels",
            source=label,
        )


def _normalise(values: np.ndarray, label: str) -> np.ndarray:
    values = values.astype(np.float64, copy=False)
    if not np.isfinite(values).all():
        raise ImageError("the pixel data contains NaN or infinite values", source=label)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise ImageError("the image is blank (every pixel has the same value)", source=label)
    return ((values - lo) / (hi - lo)).astype(np.float32)


def _read_raster(data: bytes, label: str) -> RadiographImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            _check_size(height, width, label)
            n_frames = getattr(img, "n_frames", 1)
            if n_frames > 1:
                raise ImageError(
                    f"the file holds {n_frames} frames; upload one radiograph", source=label
                )
            fmt = (img.format or "").lower()
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"the image has too many pixels to be a radiograph; the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels",
            source=label,
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            "not a readable image (expected PNG, JPEG or DICOM)", source=label
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"the image data is corrupt or truncated ({exc})", source=label) from None
    kind: Literal["png", "jpeg", "image"] = (
        "png" if fmt == "png" else "jpeg" if fmt in ("jpeg", "mpo") else "image"
    )
    notes: list[str] = []
    if img.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
        spread = float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).max())
        if spread > 8.0:
            notes.append(
                "colour image: converted to grayscale by luminance (radiographs are grayscale)"
            )
        pixels = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        return RadiographImage(pixels, kind, tuple(notes))
    if img.mode == "L":
        return RadiographImage(np.asarray(img, dtype=np.float32) / 255.0, kind, ())
    if img.mode == "1":
        return RadiographImage(np.asarray(img.convert("L"), dtype=np.float32) / 255.0, kind, ())
    if img.mode.startswith("I") or img.mode == "F":
        # 16-bit or float rasters: stretch the stored range (bit depth says nothing about windowing).
        raw = np.asarray(img)
        notes.append(f"{img.mode} raster scaled from its own minimum and maximum")
        return RadiographImage(_normalise(raw, label), kind, tuple(notes))
    raise ImageError(f"unsupported pixel mode {img.mode!r}", source=label)


def _read_dicom(data: bytes, label: str) -> RadiographImage:
    # pydicom parses elements lazily, so a malformed header can fail on any later access; its
    # errors have no common base class, hence the broad catch around the whole read.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _read_dicom_checked(data, label)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(
            f"the DICOM file is malformed or truncated ({type(exc).__name__})", source=label
        ) from None


def _read_dicom_checked(data: bytes, label: str) -> RadiographImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise ImageError(
            f"not a readable DICOM file ({type(exc).__name__})", source=label
        ) from None
    modality = str(ds.get("Modality", "") or "").upper()
    if modality not in RADIOGRAPH_MODALITIES:
        raise ImageError(
            f"this DICOM is a {modality} series, not a plain radiograph (CR/DX)", source=label
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageError(
            f"this DICOM holds {frames} frames (multi-frame); upload a single radiograph",
            source=label,
        )
    if "PixelData" not in ds:
        raise ImageError("this DICOM has no pixel data", source=label)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    _check_size(rows, cols, label)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    try:
        raw = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for unsupported transfer syntaxes
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax)) if syntax is not None else "unknown"
        raise ImageError(
            f"cannot decode the DICOM pixel data (transfer syntax: {name}; "
            f"{type(exc).__name__}); export it uncompressed or as PNG",
            source=label,
        ) from None
    notes: list[str] = []
    if samples != 1:
        if raw.ndim != 3 or raw.shape[-1] != 3:
            raise ImageError(f"unsupported DICOM with {samples} samples per pixel", source=label)
        raw = raw.astype(np.float64).mean(axis=-1)
        notes.append("colour DICOM averaged to grayscale")
    else:
        raw = apply_modality_lut(raw, ds)
        has_window = "WindowCenter" in ds or "VOILUTSequence" in ds
        raw = apply_voi_lut(raw, ds)
        if has_window:
            notes.append("DICOM window / VOI LUT applied")
        if photometric == "MONOCHROME1":
            raw = raw.max() - raw
            notes.append("MONOCHROME1: inverted so that bone is bright")
    if raw.ndim != 2:
        raise ImageError(f"expected a 2-D image, got pixel data of shape {raw.shape}", source=label)
    return RadiographImage(_normalise(raw, label), "dicom", tuple(notes))


def read_radiograph(
    source: Source, name: str | None = None, limits: InputLimits = DEFAULT_LIMITS
) -> RadiographImage:
    """Read one chest radiograph from PNG, JPEG or DICOM bytes; typed errors only."""
    label = source_name(source, name)
    try:
        data = read_bytes(source, name, limits)
    except CohortError as exc:
        raise ImageError(exc.detail, source=label) from None
    image = _read_dicom(data, label) if _is_dicom(data) else _read_raster(data, label)
    if float(image.pixels.max()) <= float(image.pixels.min()):
        raise ImageError("the image is blank (every pixel has the same value)", source=label)
    log.debug("read a %s radiograph of %d x %d pixels", image.kind, *image.shape[::-1])
    return image


def fit_square(pixels: np.ndarray, size: int, mode: FitMode = "pad") -> np.ndarray:
    """Aspect-preserving resize to ``size x size``: letterbox with black ("pad") or centre crop."""
    if mode not in ("pad", "crop"):
        raise ValueError(f"mode must be 'pad' or 'crop', got {mode!r}")
    height, width = pixels.shape
    scale = size / (max(height, width) if mode == "pad" else min(height, width))
    new_h = max(1, round(height * scale))
    new_w = max(1, round(width * scale))
    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32), mode="F")
    resized = np.asarray(img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0))
    out = np.zeros((size, size), dtype=np.float32)
    if mode == "pad":
        top, left = (size - new_h) // 2, (size - new_w) // 2
        out[top : top + new_h, left : left + new_w] = resized
    else:
        top, left = (new_h - size) // 2, (new_w - size) // 2
        out[:] = resized[top : top + size, left : left + size]
    return np.clip(out, 0.0, 1.0)


def to_png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of ``pixels`` in [0, 1] (for downloads); carries no metadata."""
    arr = (np.clip(np.asarray(pixels, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return buf.getvalue()
