"""Training-data adapters: Hannover pairs (real data, skipped when absent), MIMIC layout
(fixture the test writes), image folders and the patient-level split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.cxr.data import (
    MEDFUSE_VARIABLES,
    hannover_pairs,
    holdout_patients,
    image_folder,
    load_images,
    mimic_pairs,
)
from tests.conftest import shared_path
from tests.core.cxr.fixtures import phantom


def _save(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((phantom(48, seed) * 255).astype(np.uint8)).save(path)


def test_mimic_layout_pairs_windows_and_gcs_text(tmp_path: Path) -> None:
    meta = pd.DataFrame(
        {
            "subject_id": ["10000001"] * 3 + ["10000002"],
            "study_id": ["50000001", "50000002", "50000003", "50000004"],
            "dicom_id": ["a1", "a2", "a3", "b1"],
            "StudyDate": ["21800101", "21800103", "21800301", "21800101"],
            "StudyTime": ["080000.000", "200000", "090000", "100000"],
        }
    )
    for row in meta.itertuples():
        _save(
            tmp_path
            / "files"
            / f"p{row.subject_id[:2]}"
            / f"p{row.subject_id}"
            / f"s{row.study_id}"
            / f"{row.dicom_id}.jpg",
            1,
        )
    ehr = pd.DataFrame(
        {
            "subject_id": ["10000001"] * 3,
            "charttime": ["2180-01-01 09:00:00", "2180-01-02 09:00:00", "2180-01-05 09:00:00"],
            "Heart Rate": ["88", "", "70"],
            "Glascow coma scale total": ["15", "11", ""],
            "Glascow coma scale eye opening": ["4 Spontaneously", "To Pain", ""],
            "not a medfuse column": ["1", "2", "3"],
        }
    )
    meta.to_csv(tmp_path / "meta.csv", index=False)
    ehr.to_csv(tmp_path / "ehr.csv", index=False)
    pairs = mimic_pairs(tmp_path / "meta.csv", tmp_path / "ehr.csv", tmp_path)
    # a1 -> a2 (60 h); a2 -> a3 is 57 days, beyond the default 30-day limit; b1 has no successor
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair.gap_hours == 60.0 and pair.prior.is_file() and pair.later.is_file()
    w = pair.window
    assert set(w["variable"]) <= set(MEDFUSE_VARIABLES)
    assert sorted(w["hours"].unique()) == [1.0, 25.0]  # the 2180-01-05 row is after the later image
    eye = w[w["variable"] == "Glascow coma scale eye opening"]["value"].tolist()
    assert eye == [4.0]  # leading number kept, pure text dropped


def test_image_folder_labels_and_cache(tmp_path: Path) -> None:
    _save(tmp_path / "train" / "NORMAL" / "n1.png", 1)
    _save(tmp_path / "train" / "PNEUMONIA" / "p1.jpeg", 2)
    _save(tmp_path / "other" / "x.png", 3)
    items = image_folder(tmp_path)
    labels = {p.name: lab for p, lab in items}
    assert labels == {"n1.png": 0, "p1.jpeg": 1, "x.png": -1}
    cache = load_images([p for p, _ in items], 32)
    assert cache.shape == (3, 32, 32) and cache.dtype == np.uint8


def test_holdout_is_patient_level_and_order_free() -> None:
    ids = [f"p{i}" for i in range(50)]
    a = holdout_patients(ids, 0.2, 0)
    assert a == holdout_patients(list(reversed(ids)) * 2, 0.2, 0)
    assert len(a) == 10 and a != holdout_patients(ids, 0.2, 1)


def test_hannover_pairs_on_the_real_repository() -> None:
    root = shared_path("cxr-hannover")
    pairs = hannover_pairs(root)
    assert len(pairs) == 139 and len({p.patient_id for p in pairs}) == 30
    assert all(p.gap_hours >= 24 and p.prior.is_file() and p.later.is_file() for p in pairs)
    for p in pairs:
        assert (p.window["hours"] >= 0).all() and (p.window["hours"] <= p.gap_hours).all()
        assert np.isfinite(p.window["value"]).all()  # +-inf lab values are dropped


def test_dataset_cards_name_each_source_once_with_its_licence() -> None:
    from core.cxr.data import dataset_cards

    cards = dataset_cards(["x/cxr-kermany/train", "x/cxr-kermany/test", "y/cxr-hannover/png", "z"])
    assert [c.get("licence") for c in cards] == ["CC BY 3.0", "CC BY 4.0", None]
    assert cards[-1] == {"name": "z"}
