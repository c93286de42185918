"""Real-browser journeys: the real server (`streamlit run app.py`) driven by Debian's chromium
through Playwright, clicked as a user would. One PNG per step goes to test-artifacts/browser/.

Skipped, with the reason, when chromium or Playwright is absent (`.ci/run` installs both).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STEP_TIMEOUT_MS = 180_000

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is absent")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "CSS_DEVICE": "cpu"}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
            "--server.port", str(port), "--server.address", "127.0.0.1",
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"the server did not answer /_stcore/health: {proc.stdout.read().decode()}")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
        )
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
        self.page.get_by_text(text, exact=False).first.wait_for(timeout=STEP_TIMEOUT_MS)

    def idle(self) -> None:
        """Wait until the script run ends (Streamlit shows its status widget while running)."""
        self.page.wait_for_timeout(300)
        self.page.locator('[data-testid="stStatusWidget"]').wait_for(
            state="detached", timeout=STEP_TIMEOUT_MS
        )

    def nav(self, title: str) -> None:
        self.page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
        self.idle()

    def button(self, label: str) -> None:
        self.page.get_by_role("button", name=label).first.click()
        self.idle()

    def choose(self, select_label: str, option_text: str) -> None:
        box = self.page.locator('[data-testid="stSelectbox"]', has_text=select_label).first
        box.click()
        self.page.get_by_role("option").filter(has_text=option_text).first.click()
        self.idle()


def _new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    return context, context.new_page()


def test_ehr_journey_demo_generate_review_and_report(server, browser, tmp_path):
    context, page = _new_page(browser)
    j = Journey(page, "ehr")
    page.goto(server)
    j.see("System status")
    j.idle()
    j.shot("home")
    j.nav("Cohort")
    j.page.get_by_role("button", name="Load cohort").wait_for(timeout=STEP_TIMEOUT_MS)
    j.button("Load cohort")
    page.locator('[data-testid="stMetric"]').first.wait_for(timeout=STEP_TIMEOUT_MS)
    j.shot("cohort-loaded")
    j.nav("Generate")
    j.see("Model card")
    j.button("Generate")
    j.see("Synthetic sets in this session")
    j.see("Dimension-wise probability")
    j.shot("generated")
    j.nav("Review")
    j.button("Add independent-marginals baseline")
    j.button("Run review")
    j.see("Release gate")
    page.get_by_text("Release gate").first.scroll_into_view_if_needed()
    j.shot("reviewed")
    with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Download HTML report").click()
    path = tmp_path / "report.html"
    download.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    assert "Synthetic data review" in text and "Release gate" in text
    assert "Independent marginals (baseline)" in text and "Plotly.newPlot" in text
    context.close()


def test_flexgen_journey_complete_patients_in_the_browser(server, browser):
    context, page = _new_page(browser)
    j = Journey(page, "flexgen")
    page.goto(server)
    j.see("System status")
    j.idle()
    j.nav("Generate")
    j.choose("Model", "FLEXGEN-EHR")
    j.see("Latent DDPM, 50 ancestral steps")
    j.shot("flexgen-selected")
    page.get_by_label("Patients", exact=True).fill("100")
    j.button("Generate")
    j.see("Static part (one row per synthetic patient)")
    j.see("observed values (points)")
    page.get_by_text("observed values (points)").first.scroll_into_view_if_needed()
    j.shot("flexgen-patients")
    assert page.get_by_role("button", name="Both in one Parquet").count() == 1
    context.close()
