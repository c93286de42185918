"""Images and DICOM files the CXR tests write themselves (no patient data)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SECRET_NAME = "Doe^Jane-7f3a"
SECRET_ID = "MRN-99123456"


def phantom(size: int = 96, seed: int = 0, opacity: float = 0.0) -> np.ndarray:
    """A chest-like [0, 1] phantom: dark lungs in a bright body, optional right-lower opacity."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.75 - 0.1 * yy
    for cx in (0.32, 0.68):
        lung = ((xx - cx) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1
        img = np.where(lung, 0.2, img)
    if opacity:
        blob = ((xx - 0.3) / 0.1) ** 2 + ((yy - 0.65) / 0.1) ** 2 < 1
        img = np.where(blob, img + opacity, img)
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)


def png_bytes(pixels: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    if mode == "I;16":
        Image.fromarray((pixels * 4095).astype(np.uint16)).save(buf, format="PNG")
    elif mode == "RGB":
        gray = (pixels * 255).astype(np.uint8)
        Image.fromarray(np.stack([gray] * 3, axis=-1), mode="RGB").save(buf, format="PNG")
    else:
        Image.fromarray((pixels * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def dicom_bytes(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME1",
    frames: int = 1,
    modality: str = "DX",
    window: tuple[float, float] | None = None,
) -> bytes:
    """An uncompressed 16-bit DICOM with identifying tags that must never surface."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("test.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName = SECRET_NAME
    ds.PatientID = SECRET_ID
    ds.PatientBirthDate = "19500101"
    ds.InstitutionName = "Secret General Hospital"
    ds.Modality = modality
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    stored = (pixels * 4095).astype(np.uint16)
    if photometric == "MONOCHROME1":
        stored = (4095 - stored).astype(np.uint16)  # bright = low values in MONOCHROME1
    if frames > 1:
        stored = np.stack([stored] * frames)
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
