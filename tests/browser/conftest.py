"""Browser fixtures: the real server on a free loopback port and Debian's chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.artifact_scan import TrainingCohort, assert_no_patient_data

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STEP_TIMEOUT_MS = 180_000

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is absent")
expect = playwright.expect
if not Path(CHROMIUM).exists():
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the server process (VmHWM), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail(f"{url} did not answer: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def start_server(
    folder: Path, env: dict | None = None, args: tuple = (), port: int | None = None
) -> Iterator[Server]:
    """``streamlit run app.py`` on a loopback port (a free one by default), its releases
    recorded under ``folder``."""
    port = port or _free_port()
    env = {
        **os.environ,
        "CSS_DEVICE": "cpu",
        "CSS_LOG_LEVEL": "INFO",
        "CSS_STATE_DIR": str(folder / "state"),
        # Beside an xdist worker training on one core, a server on two torch threads would
        # oversubscribe the two cores.
        **({"OMP_NUM_THREADS": "1"} if os.environ.get("PYTEST_XDIST_WORKER") else {}),
        **(env or {}),
    }
    log = folder / "server.log"
    out = log.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
            "--server.port", str(port), "--server.address", "127.0.0.1",
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            # No file watcher: screenshots written under the project must not trigger reruns.
            "--server.fileWatcherType", "none", *args,
        ],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/_stcore/health", proc, log)
    try:
        yield Server(url, proc, log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        out.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("server")) as s:
        yield s


LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


@pytest.fixture(scope="module")
def pw():
    with playwright.sync_playwright() as p:
        yield p


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


@pytest.fixture(scope="module")
def browser(pw):
    b = launch(pw)
    yield b
    b.close()


class Journey:
    def __init__(self, page, name: str) -> None:
        self.page, self.name, self.step = page, name, 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(self, what: str) -> None:
        self.step += 1
        self.page.screenshot(
            path=str(ARTIFACTS / f"{self.name}-{self.step:02d}-{what}.png"), full_page=True
        )

    def see(self, text: str) -> None:
        try:
            self.page.get_by_text(text, exact=False).first.wait_for(timeout=STEP_TIMEOUT_MS)
        except playwright.TimeoutError:
            self.shot("failed-waiting")  # what the page showed instead
            raise

    def idle(self) -> None:
        """Wait until the script run ends: the app root's ``data-test-script-state`` leaves
        "notRunning" as soon as a rerun is requested and returns to it when the run is over."""
        busy = self.page.locator('[data-testid="stApp"]:not([data-test-script-state="notRunning"])')
        try:  # a rerun may take a moment to be requested on a busy server
            busy.wait_for(state="attached", timeout=400)
        except playwright.TimeoutError:
            pass
        self.page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
            state="attached", timeout=STEP_TIMEOUT_MS
        )
        status = self.page.locator('[data-testid="stStatusWidget"]')
        status.wait_for(state="detached", timeout=STEP_TIMEOUT_MS)

    def upload_wide_cohort(self, path: Path, shot: str | None = None) -> None:
        """On the Cohort page: upload a wide CSV, load it, wait for its summary."""
        self.nav("Cohort")
        self.page.get_by_text("Upload", exact=True).first.click()
        self.idle()
        self.choose("Format", "Wide table")
        # The uploader is re-rendered by that choice: upload only once the new form is shown.
        self.see("one row per record; column types are inferred")
        self.idle()
        self.page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(path)
        load = self.page.get_by_role("button", name="Load cohort").first
        expect(load).to_be_enabled(timeout=STEP_TIMEOUT_MS)  # the upload has reached the server
        if shot:
            self.shot(shot)
        self.button("Load cohort")
        self.page.locator('[data-testid="stMetric"]').first.wait_for(timeout=STEP_TIMEOUT_MS)

    def load_demo_cohort(self, timeout: float = STEP_TIMEOUT_MS) -> None:
        """The Cohort page's first demo, loaded and summarised."""
        self.nav("Cohort")
        self.page.get_by_role("button", name="Load cohort").wait_for(timeout=timeout)
        self.button("Load cohort")
        self.page.locator('[data-testid="stMetric"]').first.wait_for(timeout=timeout)

    def run_review(self, bootstrap: int = 20) -> None:
        """On the Review page: run the review of the chosen sets, with few bootstrap resamples
        (fast; the gate needs none), up to the release gate."""
        boot = self.page.get_by_label("Bootstrap resamples (CIs)")
        boot.fill(str(bootstrap))
        boot.press("Enter")
        self.idle()
        self.button("Run review")
        self.see("Release gate")

    def nav(self, title: str) -> None:
        self.page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
        self.idle()

    def button(self, label: str, exact: bool = False) -> None:
        self.page.get_by_role("button", name=label, exact=exact).first.click()
        self.idle()

    def choose(self, select_label: str, option_text: str) -> None:
        box = self.page.locator('[data-testid="stSelectbox"]', has_text=select_label).first
        box.click()
        self.page.get_by_role("option").filter(has_text=option_text).first.click()
        self.idle()


def review_the_demo_baseline(j: Journey) -> None:
    """Load the demo cohort, add the independent-marginals baseline and review it (20 bootstrap
    resamples: the gate needs none), up to the release gate."""
    j.load_demo_cohort()
    j.nav("Review")
    j.button("Add independent-marginals baseline")
    j.run_review()


def release_reviewed_set(j: Journey, override_reason: str) -> None:
    """As a steward on the reviewed Review page: release the set, overriding the gate with
    ``override_reason`` when it does not pass (the demo baseline is inconclusive)."""
    j.page.get_by_text("Release a synthetic set").first.scroll_into_view_if_needed()
    if j.page.get_by_text("Override: release this set").count():
        j.page.get_by_text("Override: release this set").first.click()
        j.idle()
        j.page.get_by_label("Reason for the override").fill(override_reason)
        j.page.get_by_label("Reason for the override").press("Enter")
        j.idle()
    j.button("Release: sign and record in the ledger")
    j.see("recorded in the ledger")


def demo_cohort() -> TrainingCohort:
    """The cohort the demo journeys load (the Cohort page's first demo), as the scan sees it."""
    return TrainingCohort.from_file(ROOT / "assets" / "demo" / "icu_stays.parquet", "record_id")


def scan_server(server: Server, cohort: TrainingCohort, *downloads: Path) -> None:
    """Issue 28: after a journey, no file the server wrote (its state folder: model store,
    ledger, keys; its log) nor any download nor test output holds the cohort's record ids or
    rows of values."""
    result = assert_no_patient_data(
        [server.log.parent / "state", server.log, *downloads, ARTIFACTS], cohort
    )
    print(f"artifact scan: {result.files} files ({len(result.skipped)} images/weights skipped)")


def new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(STEP_TIMEOUT_MS)  # a busy 2-core server answers slowly
    return context, context.new_page()
