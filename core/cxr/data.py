"""Training-data adapters for DDL-CXR: image folders (VAE), Hannover longitudinal pairs and a
MIMIC-CXR-JPG + MIMIC-IV layout (forecaster). Images are read through the same reader the app
uses and cached at model resolution as uint8."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.images import FitMode, fit_square, read_radiograph
from core.errors import CohortError
from core.progress import ProgressCallback

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")
HANNOVER_LABS = ("crp", "d-dimer", "factor_xii", "ldh", "lymphocytes", "neutrophils", "pco2", "po2")
DATASET_CARDS = {
    "cxr-kermany": {
        "name": "Kermany et al. 2018, pediatric chest X-rays (Mendeley Data v2)",
        "licence": "CC BY 4.0",
        "attribution": "Kermany DS, Zhang K, Goldbaum M. Labeled Optical Coherence Tomography (OCT) "
        "and Chest X-Ray Images for Classification. Mendeley Data v2, doi:10.17632/rscbjbr9sj.2",
    },
    "cxr-hannover": {
        "name": "COVID-19 image repository of Hannover Medical School",
        "licence": "CC BY 3.0",
        "attribution": "Winther HB et al., COVID-19 image repository, DOI 10.6084/m9.figshare.12275009",
    },
    "mimic": {
        "name": "MIMIC-CXR-JPG + MIMIC-IV",
        "licence": "PhysioNet Credentialed Health Data License 1.5.0",
    },
}
MEDFUSE_VARIABLES = (
    "Capillary refill rate",
    "Diastolic blood pressure",
    "Fraction inspired oxygen",
    "Glascow coma scale eye opening",
    "Glascow coma scale motor response",
    "Glascow coma scale total",
    "Glascow coma scale verbal response",
    "Glucose",
    "Heart Rate",
    "Height",
    "Mean blood pressure",
    "Oxygen saturation",
    "Respiratory rate",
    "Systolic blood pressure",
    "Temperature",
    "Weight",
    "pH",
)


def dataset_cards(folders: Iterable[str | Path]) -> list[dict]:
    """The licence cards of the datasets the image folders come from (by folder name), once
    each; a folder of unknown origin is named as it is."""
    keys = {next((k for k in DATASET_CARDS if k in str(f)), Path(f).name) for f in folders}
    return [DATASET_CARDS.get(k, {"name": k}) for k in sorted(keys)]


@dataclass(frozen=True)
class PairRecord:
    """One training/evaluation example: prior image, later image, the gap and the labs between."""

    patient_id: str
    prior: Path
    later: Path
    gap_hours: float
    window: pd.DataFrame  # hours, variable, value
    label: int  # auxiliary outcome (1/0), -1 unknown
    outcomes: tuple[tuple[str, int], ...] = ()  # (name, 1/0/-1 unknown) known at the later image

    def outcome(self, name: str) -> int:
        return dict(self.outcomes).get(name, -1)


def empty_window() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hours": pd.Series(dtype=float),
            "variable": pd.Series(dtype=str),
            "value": pd.Series(dtype=float),
        }
    )


def window_frame(hours: pd.Series, events: pd.DataFrame) -> pd.DataFrame:
    """Long ``hours, variable, value`` window sorted by time, from events with those columns."""
    frame = pd.DataFrame(
        {
            "hours": hours.to_numpy(float),
            "variable": events["variable"].to_numpy(),
            "value": events["value"].to_numpy(float),
        }
    )
    return frame.sort_values("hours", kind="stable").reset_index(drop=True)


def image_folder(root: str | Path) -> list[tuple[Path, int]]:
    """Every image under ``root`` with an abnormality label from its folder name:
    NORMAL -> 0, PNEUMONIA / COVID / ABNORMAL -> 1, otherwise unknown (-1)."""
    root = Path(root)
    if not root.is_dir():
        raise CohortError("image folder not found", source=str(root))
    out = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        parts = {p.upper() for p in path.relative_to(root).parts[:-1]}
        label = 0 if "NORMAL" in parts else 1 if parts & {"PNEUMONIA", "COVID", "ABNORMAL"} else -1
        out.append((path, label))
    if not out:
        raise CohortError(f"no {', '.join(IMAGE_SUFFIXES)} images found", source=str(root))
    return out


def hannover_pairs(root: str | Path) -> list[PairRecord]:
    """Consecutive radiographs of one patient ordered by ``admission_offset`` (days).

    Lab times are absolute days (exam day + lab offset); the window of a pair holds the labs
    dated from the prior exam's day up to the later exam's day. Same-day pairs are left out: the
    offsets are whole days, so their order is unknown. Non-finite lab values (the CSV encodes
    out-of-range results as +-inf) are dropped. Outcomes per pair: ``death`` (the patient died
    in hospital) and ``icu_7d`` (still in the ICU 7 days after the later exam; unknown without
    ICU dates).
    """
    root = Path(root)
    table = pd.read_csv(root / "data.csv")
    labs = []
    for lab in HANNOVER_LABS:
        part = table[["patient_id", "admission_offset", f"{lab}_offset", f"{lab}_val"]].dropna()
        part = part[np.isfinite(part[f"{lab}_val"].astype(float))]
        labs.append(
            pd.DataFrame(
                {
                    "patient_id": part["patient_id"],
                    "day": part["admission_offset"] + part[f"{lab}_offset"],
                    "variable": lab,
                    "value": part[f"{lab}_val"].astype(float),
                }
            )
        )
    all_labs = pd.concat(labs).drop_duplicates().sort_values(["patient_id", "day"])
    by_patient = dict(tuple(all_labs.groupby("patient_id")))
    pairs: list[PairRecord] = []
    for pid, rows in table.sort_values(["patient_id", "admission_offset"]).groupby("patient_id"):
        died = int(rows["death_offset"].notna().any())
        rows = rows.reset_index(drop=True)
        for i in range(len(rows) - 1):
            a, b = rows.loc[i], rows.loc[i + 1]
            gap_days = float(b["admission_offset"] - a["admission_offset"])
            if gap_days <= 0:
                continue
            pl = by_patient.get(pid)
            window = empty_window()
            if pl is not None:
                sel = pl[
                    (pl["day"] >= a["admission_offset"]) & (pl["day"] <= b["admission_offset"])
                ]
                window = window_frame((sel["day"] - a["admission_offset"]) * 24.0, sel)
            pairs.append(
                PairRecord(
                    str(pid),
                    root / "png" / f"{a['image_id']}.png",
                    root / "png" / f"{b['image_id']}.png",
                    gap_days * 24.0,
                    window,
                    died,
                    (("death", died), ("icu_7d", _icu_after(b, 7.0))),
                )
            )
    return pairs


def _icu_after(row: pd.Series, days: float) -> int:
    """1 if the exam's ICU stay ends more than ``days`` after it, 0 if not, -1 if unknown."""
    release = row.get("icu_release_offset")
    if release is None or pd.isna(release) or pd.isna(row.get("icu_admission_offset")):
        return -1
    return int(float(release) > days)


def _leading_number(values: pd.Series) -> pd.Series:
    """Numbers, or the leading number of texts such as MIMIC's GCS '4 Spontaneously'."""
    numeric = pd.to_numeric(values, errors="coerce")
    text = values.astype(str).str.extract(r"^\s*(-?\d+(?:\.\d+)?)", expand=False)
    return numeric.fillna(pd.to_numeric(text, errors="coerce"))


def mimic_pairs(
    metadata_csv: str | Path,
    ehr_csv: str | Path,
    image_root: str | Path,
    variables: Iterable[str] = MEDFUSE_VARIABLES,
    max_gap_hours: float = 24.0 * 30,
) -> list[PairRecord]:
    """MIMIC-CXR-JPG + MIMIC-IV (MedFuse hourly extraction) layout.

    ``metadata_csv``: ``subject_id, study_id, dicom_id, StudyDate (YYYYMMDD), StudyTime (HHMMSS)``
    and optionally ``path`` (else ``files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg``).
    ``ehr_csv``: ``subject_id, charttime`` plus the 17 MedFuse variables as columns.
    Consecutive studies of one subject within ``max_gap_hours`` form pairs.
    """
    meta = pd.read_csv(metadata_csv, dtype=str)
    need = {"subject_id", "study_id", "dicom_id", "StudyDate", "StudyTime"}
    if missing := need - set(meta.columns):
        raise CohortError(
            f"missing column(s) {', '.join(sorted(missing))}", source=str(metadata_csv)
        )
    time = meta["StudyTime"].str.split(".").str[0].str.zfill(6)
    meta["when"] = pd.to_datetime(meta["StudyDate"] + time, format="%Y%m%d%H%M%S", errors="coerce")
    if "path" not in meta.columns:
        meta["path"] = (
            "files/p"
            + meta["subject_id"].str[:2]
            + "/p"
            + meta["subject_id"]
            + "/s"
            + meta["study_id"]
            + "/"
            + meta["dicom_id"]
            + ".jpg"
        )
    meta = meta.dropna(subset=["when"]).sort_values(["subject_id", "when"])
    ehr = pd.read_csv(ehr_csv, dtype=str)
    if {"subject_id", "charttime"} - set(ehr.columns):
        raise CohortError("needs columns subject_id and charttime", source=str(ehr_csv))
    ehr["charttime"] = pd.to_datetime(ehr["charttime"], errors="coerce")
    cols = [v for v in variables if v in ehr.columns]
    long = ehr.melt(id_vars=["subject_id", "charttime"], value_vars=cols, var_name="variable")
    long["value"] = _leading_number(long["value"])
    long = long.dropna(subset=["value", "charttime"])
    by_subject = dict(tuple(long.groupby("subject_id")))
    image_root = Path(image_root)
    pairs: list[PairRecord] = []
    for sid, rows in meta.groupby("subject_id"):
        rows = rows.reset_index(drop=True)
        for i in range(len(rows) - 1):
            t0, t1 = rows.loc[i, "when"], rows.loc[i + 1, "when"]
            gap = (t1 - t0).total_seconds() / 3600.0
            if not 0 < gap <= max_gap_hours:
                continue
            events = by_subject.get(sid)
            window = empty_window()
            if events is not None:
                sel = events[(events["charttime"] >= t0) & (events["charttime"] <= t1)]
                window = window_frame((sel["charttime"] - t0).dt.total_seconds() / 3600.0, sel)
            pairs.append(
                PairRecord(
                    str(sid),
                    image_root / rows.loc[i, "path"],
                    image_root / rows.loc[i + 1, "path"],
                    gap,
                    window,
                    -1,
                )
            )
    return pairs


def holdout_patients(patient_ids: Iterable[str], fraction: float, seed: int) -> set[str]:
    """A deterministic patient-level holdout: hash(seed, id) decides, independent of order."""
    ids = sorted(set(patient_ids))
    if not ids or fraction <= 0:
        return set()
    scored = sorted(ids, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    return set(scored[: max(1, round(fraction * len(ids)))])


def patient_folds(patient_ids: Iterable[str], k: int, seed: int) -> list[set[str]]:
    """``k`` disjoint patient sets covering every patient, by the same order-free hash."""
    ids = sorted(set(patient_ids))
    if not 2 <= k <= len(ids):
        raise ValueError(f"need 2 <= folds <= patients ({len(ids)}), got {k}")
    scored = sorted(ids, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    return [set(scored[i::k]) for i in range(k)]


def example_pair(pairs: list[PairRecord]) -> PairRecord:
    """The shipped example's pair, by a fixed rule on metadata only: among gaps of 2 to 5 days
    (the commonest), the window with the most lab observations; ties by the patient hash."""
    pool = [p for p in pairs if 48.0 <= p.gap_hours < 120.0] or list(pairs)
    if not pool:
        raise CohortError("no longitudinal pairs to pick an example from")
    return max(
        pool,
        key=lambda p: (len(p.window), hashlib.sha256(p.patient_id.encode()).hexdigest()),
    )


def load_images(
    paths: list[Path],
    size: int,
    fit: FitMode = "pad",
    callback: ProgressCallback | None = None,
) -> np.ndarray:
    """``[N, size, size]`` uint8 cache of the images at model resolution."""
    out = np.zeros((len(paths), size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        pixels = fit_square(read_radiograph(path).pixels, size, fit)
        out[i] = np.round(pixels * 255.0).astype(np.uint8)
        if callback is not None and (i + 1) % 200 == 0:
            callback(i + 1, len(paths))
    return out
