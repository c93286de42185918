from pathlib import Path

import numpy as np
import pytest

from core.data.physionet2012 import TIME_SERIES, load_physionet2012
from core.errors import CohortError
from tests.conftest import make_tar_gz, make_zip, record_text, shared_path


def _var(cohort, name):
    return TIME_SERIES.index(name)


def test_tar_gz_with_outcomes(physionet_tar, physionet_outcomes):
    c = load_physionet2012(physionet_tar, physionet_outcomes, name="set-a.tar.gz")
    assert c.n_records == 3 and c.n_patients == 3
    assert list(c.record_ids) == ["1001", "1002", "1003"]
    assert c.labels.tolist() == [0, 0, 1]
    assert c.label_classes == ("survived", "died")
    assert c.temporal.values.shape == (3, 48, len(TIME_SERIES))


def test_static_descriptors_and_missing_marker(physionet_tar, physionet_outcomes):
    c = load_physionet2012(physionet_tar, physionet_outcomes)
    s = c.static
    assert s["Age"].tolist() == [54, 76, 44]
    assert s["Gender"].tolist() == [0, 1, 1]
    assert np.isnan(s.loc[1, "Height"]) and np.isnan(s.loc[1, "Weight"])  # -1 = missing
    assert s["ICUType"].tolist() == ["Surgical ICU", "Cardiac Surgery Recovery Unit", "Medical ICU"]
    assert [f.kind for f in c.static_features] == [
        "numeric",
        "binary",
        "numeric",
        "categorical",
        "numeric",
    ]


def test_hourly_grid_aggregates_and_masks(physionet_tar):
    c = load_physionet2012(physionet_tar)
    t = c.temporal
    hr, temp, urine, weight = (_var(c, v) for v in ("HR", "Temp", "Urine", "Weight"))
    assert t.values[0, 0, hr] == 80 and t.values[0, 1, hr] == 90 and t.values[0, 1, temp] == 37.5
    assert t.values[1, 0, hr] == 75  # mean of 70 and 80 within hour 0
    assert t.values[2, 47, urine] == 150  # 47:59 and the closing 48:00 share the last bin
    # The 00:00 weight is the static descriptor; the 05:00 weight is a measurement.
    assert not t.mask[0, 0, weight] and t.values[0, 5, weight] == 71
    assert t.mask.sum() == 7
    assert np.isnan(t.values[~t.mask]).all() and not np.isnan(t.values[t.mask]).any()


def test_last_aggregation(physionet_tar):
    c = load_physionet2012(physionet_tar, aggregate="last")
    assert c.temporal.values[1, 0, _var(c, "HR")] == 80


def test_zip_and_folder_give_the_same_cohort(physionet_files, physionet_tar, tmp_path: Path):
    for name, content in physionet_files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    a = load_physionet2012(physionet_tar)
    b = load_physionet2012(make_zip(physionet_files))
    c = load_physionet2012(tmp_path)
    assert a.fingerprint() == b.fingerprint() == c.fingerprint()


def test_progress_callback_reaches_total(physionet_tar):
    calls = []
    load_physionet2012(physionet_tar, callback=lambda s, t: calls.append((s, t)))
    assert calls[-1][0] == calls[-1][1] and all(s <= t for s, t in calls)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("00:00", "RecordID", "1"), ("00:05", "HR", "abc")], "Value 'abc' is not a number"),
        ([("00:00", "RecordID", "1"), ("5 min", "HR", "80")], "expected 'HH:MM,Parameter,Value'"),
    ],
)
def test_bad_rows_name_file_and_line(rows, message):
    archive = make_tar_gz({"set-a/1.txt": record_text(rows)})
    with pytest.raises(CohortError, match=message) as err:
        load_physionet2012(archive, name="set-a.tar.gz")
    assert err.value.source == "set-a.tar.gz/set-a/1.txt" and err.value.line == 3


def test_wrong_header_and_empty_archive():
    with pytest.raises(CohortError, match="expected header 'Time,Parameter,Value'"):
        load_physionet2012(make_tar_gz({"set-a/1.txt": b"a,b,c\n1,2,3\n"}))
    with pytest.raises(CohortError, match="no record files found"):
        load_physionet2012(make_tar_gz({"set-a/readme.md": b"hello"}))


def test_record_id_must_match_file_name():
    archive = make_tar_gz({"set-a/1.txt": record_text([("00:00", "RecordID", "2")])})
    with pytest.raises(CohortError, match="RecordID 2 but is named 1.txt"):
        load_physionet2012(archive)


def test_outcomes_must_cover_every_record(physionet_tar):
    with pytest.raises(CohortError, match=r"no outcome for 1 record\(s\), e.g. RecordID 1003"):
        load_physionet2012(physionet_tar, b"RecordID,In-hospital_death\n1001,0\n1002,1\n")
    with pytest.raises(CohortError, match="expected 0 or 1, found '2'") as err:
        load_physionet2012(physionet_tar, b"RecordID,In-hospital_death\n1001,0\n1002,2\n1003,0\n")
    assert err.value.line == 3 and err.value.column == "In-hospital_death"


@pytest.mark.shared_data
def test_real_set_a_counts():
    folder = shared_path("physionet2012")
    c = load_physionet2012(folder / "set-a.tar.gz", folder / "Outcomes-a.txt")
    assert c.n_records == 4000
    assert int((c.labels == 1).sum()) == 554
    assert c.temporal.values.shape == (4000, 48, 37)
    # Age is always recorded in set-a; Height is missing for about half of the stays.
    assert c.static["Age"].notna().all()
    assert 0.4 < c.static["Height"].isna().mean() < 0.55
    # HR is the most frequently charted variable: observed in most patient-hours.
    hr = c.temporal.mask[:, :, TIME_SERIES.index("HR")].mean()
    assert hr == c.temporal.mask.mean(axis=(0, 1)).max() and hr > 0.8
