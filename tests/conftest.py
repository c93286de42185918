"""Shared fixtures: small cohorts in real formats, built by the tests themselves."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Set before numpy, scikit-learn and torch load their thread pools: two workers on two cores
    # at two OpenMP / BLAS threads each oversubscribe, and OpenMP's spinning threads then make
    # scikit-learn's boosted trees about 10x slower (the review's detection: 31 s against 3 s).
    for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_pool] = "1"

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, skipping the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"needs the public datasets at {path} (../shared/data is absent on this machine)"
        )
    return path


# Three stays: 2 survivors, 1 death. Record 1002 has Height -1 (missing) and two HR values in
# hour 0 (mean 75), record 1003 has a value at exactly 48:00 (last bin).
PHYSIONET_RECORDS = {
    "1001": [
        ("00:00", "RecordID", "1001"), ("00:00", "Age", "54"), ("00:00", "Gender", "0"),
        ("00:00", "Height", "160.0"), ("00:00", "ICUType", "4"), ("00:00", "Weight", "70"),
        ("00:07", "HR", "80"), ("01:30", "HR", "90"), ("01:30", "Temp", "37.5"), ("05:00", "Weight", "71"),
    ],
    "1002": [
        ("00:00", "RecordID", "1002"), ("00:00", "Age", "76"), ("00:00", "Gender", "1"),
        ("00:00", "Height", "-1"), ("00:00", "ICUType", "2"), ("00:00", "Weight", "-1"),
        ("00:10", "HR", "70"), ("00:50", "HR", "80"), ("02:00", "MechVent", "1"),
    ],
    "1003": [
        ("00:00", "RecordID", "1003"), ("00:00", "Age", "44"), ("00:00", "Gender", "1"),
        ("00:00", "Height", "180"), ("00:00", "ICUType", "3"), ("00:00", "Weight", "90"),
        ("47:59", "Urine", "100"), ("48:00", "Urine", "200"),
    ],
}  # fmt: skip
PHYSIONET_OUTCOMES = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n1001,6,1,5,-1,0\n1002,16,8,8,-1,0\n1003,20,9,3,3,1\n"


def record_text(rows: list[tuple[str, str, str]]) -> bytes:
    return ("Time,Parameter,Value\n" + "".join(f"{t},{p},{v}\n" for t, p, v in rows)).encode()


def make_tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("set-a")
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.fixture
def physionet_files() -> dict[str, bytes]:
    return {f"set-a/{rid}.txt": record_text(rows) for rid, rows in PHYSIONET_RECORDS.items()}


@pytest.fixture
def physionet_tar(physionet_files: dict[str, bytes]) -> bytes:
    return make_tar_gz(physionet_files)


@pytest.fixture
def physionet_outcomes() -> bytes:
    return PHYSIONET_OUTCOMES.encode()


EICU_DIAGNOSIS = (
    "diagnosisid,patientunitstayid,activeupondischarge,diagnosisoffset,diagnosisstring,icd9code,diagnosispriority\n"
    '1,10,False,5,cardiovascular|hypertension,"401.9, I10",Other\n'
    '2,10,False,6,neurologic|altered mental status,"780.09, R41.82",Major\n'
    '3,11,True,7,pulmonary|respiratory failure,"518.81, J96.00",Major\n'
    '4,12,True,8,injury|poisoning,"E980.2, 965.00, T40.60",Major\n'
    "5,13,True,9,burns|burn,,Major\n"
    '6,14,True,9,endocrine|diabetes,"E11.9",Major\n'
    '7,10,False,9,cardiovascular|hypertension,"401.1, I10",Other\n'
)
EICU_PATIENT = (
    "patientunitstayid,uniquepid,hospitaldischargestatus\n"
    "10,002-1,Alive\n11,002-1,Expired\n12,002-2,Alive\n13,002-3,\n14,002-4,Alive\n"
)
MIMIC3_DIAGNOSES = (
    '"ROW_ID","SUBJECT_ID","HADM_ID","SEQ_NUM","ICD9_CODE"\n'
    "1,109,172335,1,40301\n2,109,172335,2,486\n3,109,173633,1,E8889\n4,109,173633,2,V5867\n"
    "5,112,174105,1,53100\n6,112,174105,2,41071\n7,112,174105,3,4019\n"
)
MIMIC4_DIAGNOSES = (
    "subject_id,hadm_id,seq_num,icd_code,icd_version\n"
    "10000032,22595853,1,5723,9\n10000032,22595853,2,78959,9\n10000032,22841357,1,I10,10\n"
    "10000068,25022803,1,E119,10\n10000068,25022803,2,E8497,9\n"
)


@pytest.fixture(autouse=True)
def release_state(tmp_path_factory, monkeypatch) -> Path:
    """Every test signs and records releases in its own folder, never in the user's."""
    folder = tmp_path_factory.mktemp("css-state")
    monkeypatch.setenv("CSS_STATE_DIR", str(folder))
    monkeypatch.delenv("CSS_LEDGER_URL", raising=False)
    monkeypatch.delenv("CSS_LEDGER_URL_FILE", raising=False)
    monkeypatch.delenv("CSS_SIGNING_KEY", raising=False)
    return folder


# Module fixtures that train a toy model (several seconds each): every test using one is slow, so
# the quick tier (-m "not slow and not browser") never trains.
TRAINED_FIXTURES = {
    "bernoulli_model",
    "conditional_model",
    "teacher",
    "student",
    "planted",
    "tiny_setup",  # DDL-CXR toy VAE + forecaster
    "tiny_forecaster",
}


def pytest_configure(config) -> None:
    # Under pytest-xdist each worker is one process of a pool sized to the cores: one thread
    # each, or two workers on two cores run four threads and oversubscribe. The pools loaded
    # before this file set the environment are limited here.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)
        threadpool_limits(1)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if TRAINED_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_xdist_make_scheduler(config, log):
    """Under `-n 2 --dist loadfile`: a test file runs on one worker (its trained fixtures are
    trained once), and the browser journeys' files count as one, so the journeys run one after
    another on one worker: each drives a server and chromium, which would otherwise share two
    cores with another journey as well as a training. (xdist's own `loadgroup` cannot do this
    under pytest 9: it renames node ids, which pytest 9 no longer reads.)"""
    if config.getoption("dist") != "loadfile":
        return None
    from collections import OrderedDict

    from xdist.scheduler import LoadScopeScheduling

    class BrowserFirst(OrderedDict):
        """The journeys, the longest unit, start first: started last, they end the run alone."""

        def __setitem__(self, scope, tests) -> None:
            super().__setitem__(scope, tests)
            if scope == BROWSER:
                self.move_to_end(scope, last=False)

    class FileScheduling(LoadScopeScheduling):
        def __init__(self, config, log=None) -> None:
            super().__init__(config, log)
            self.workqueue = BrowserFirst()

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return BROWSER if path.startswith(BROWSER + "/") else path

    return FileScheduling(config, log)


BROWSER = "tests/browser"
