"""Eight people at once against one server: each uploads a different cohort and generates at the
same time. Every session finishes without error, sees only its own data, the shipped model is
loaded once for all of them, the server keeps answering while they work; peak memory is reported
(printed and written to test-artifacts/browser/concurrency.txt)."""

from __future__ import annotations

import threading
import time
import urllib.request

import pandas as pd
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, ROOT, Journey, launch, new_page

pytestmark = pytest.mark.browser
SESSIONS = 8


def _cohort_files(tmp_path) -> list:
    """Eight disjoint cohorts: 250 stays each of the shipped demo, with their own record ids."""
    stays = pd.read_parquet(ROOT / "assets" / "demo" / "icu_stays.parquet")
    paths = []
    for i in range(SESSIONS):
        # Without the label column the table has exactly the shipped model's columns.
        part = stays.iloc[i * 250 : (i + 1) * 250].drop(columns="In-hospital_death")
        part["record_id"] = [f"session{i}-stay{k:03d}" for k in range(len(part))]
        path = tmp_path / f"cohort_{i}.csv"
        part.to_csv(path, index=False)
        paths.append(path)
    return paths


class HealthProbe(threading.Thread):
    """Polls /_stcore/health while the sessions work; records the slowest answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.worst, self.count, self.stop = url, 0.0, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=60) as r:
                assert r.status == 200
            self.worst = max(self.worst, time.perf_counter() - start)
            self.count += 1
            time.sleep(0.2)


def test_eight_sessions_upload_and_generate_at_once(server, pw, tmp_path):
    files = _cohort_files(tmp_path)
    journeys = []
    # One browser per person: a shared browser caps connections per host and stalls uploads.
    browsers = [launch(pw) for _ in files]
    for i, path in enumerate(files):
        context, page = new_page(browsers[i])
        j = Journey(page, f"session{i}")
        page.goto(server.url)
        j.see("System status")
        j.idle()
        j.upload_wide_cohort(path, shot="uploaded")
        j.nav("Generate")
        name = page.get_by_label("Name of this synthetic set")
        name.fill(f"set-{i}")
        expect(name).to_have_value(f"set-{i}")
        journeys.append((context, j))

    probe = HealthProbe(server.url)
    probe.start()
    start = time.perf_counter()
    for _, j in journeys:  # press Generate in all eight before waiting for any
        j.page.get_by_role("button", name="Generate").first.click()
    for _, j in journeys:
        j.see("Synthetic sets in this session")
        j.idle()
    seconds = time.perf_counter() - start
    probe.stop.set()
    probe.join()

    for i, (context, j) in enumerate(journeys):
        page = j.page
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        # The set shown is this session's own: its download carries the session's set name.
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").first.click()
        assert download.value.suggested_filename == f"set_{i}.csv"
        ids = download.value.path().read_text().splitlines()[1:3]
        assert all(line.startswith("syn-") for line in ids)
        assert "real (session training split)" in page.inner_text("body")
        j.shot("generated")
        j.nav("Cohort")
        j.see(f"Table (cohort_{i}.csv)")
        body = page.inner_text("body")
        assert f"cohort_{i}.csv" in body and "250" in body
        assert not any(f"cohort_{k}.csv" in body for k in range(SESSIONS) if k != i)
        context.close()
    for b in browsers:
        b.close()

    log = server.log.read_text()
    loads = log.count("loaded checkpoint ehrdiff-physionet2012")
    assert loads == 1, f"the shipped model was loaded {loads} times"
    peak = server.peak_rss_mb()
    report = (
        f"{SESSIONS} sessions generated at once in {seconds:.1f} s; server peak RSS {peak:.0f} MB; "
        f"health endpoint answered {probe.count} times, slowest {probe.worst:.2f} s"
    )
    print(report)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "concurrency.txt").write_text(report + "\n")
    assert probe.worst < 10.0, report
