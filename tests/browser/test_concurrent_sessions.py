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

from tests.browser.conftest import ARTIFACTS, ROOT, Journey, expect, launch, new_page, playwright

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


class Session(threading.Thread):
    """One person in their own browser, driven from its own thread (Playwright's sync API needs
    one instance per thread), so the eight set up at the same time instead of one after another.
    Every session waits at ``ready`` and presses Generate when all are set up."""

    def __init__(self, i: int, path, url: str, ready: threading.Barrier) -> None:
        super().__init__(daemon=True)
        self.i, self.path, self.url, self.ready = i, path, url, ready
        self.error: BaseException | None = None
        self.generated_at = 0.0

    def run(self) -> None:
        try:
            with playwright.sync_playwright() as p:
                browser = launch(p)
                try:
                    self.journey(browser)
                finally:
                    browser.close()
        except BaseException as exc:  # reported by the test in the main thread
            self.error = exc
            self.ready.abort()

    def journey(self, browser) -> None:
        i = self.i
        context, page = new_page(browser)
        j = Journey(page, f"session{i}")
        page.goto(self.url)
        j.see("System status")
        j.idle()
        # Full-page screenshots cost seconds each on two cores: the first session's stand for all.
        j.upload_wide_cohort(self.path, shot="uploaded" if i == 0 else None)
        j.nav("Generate")
        name = page.get_by_label("Name of this synthetic set")
        name.fill(f"set-{i}")
        expect(name).to_have_value(f"set-{i}")
        self.ready.wait()  # press Generate in all eight before any waits for its result
        page.get_by_role("button", name="Generate").first.click()
        j.see("Synthetic sets in this session")
        j.idle()
        self.generated_at = time.perf_counter()

        assert page.locator('[data-testid="stException"]').count() == 0
        errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        assert errors == []
        # The set shown is this session's own: its download carries the session's set name.
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").first.click()
        assert download.value.suggested_filename == f"set_{i}.csv"
        ids = download.value.path().read_text().splitlines()[1:3]
        assert all(line.startswith("syn-") for line in ids)
        j.see("real (session training split)")  # the chart renders after the set is listed
        if i == 0:
            j.shot("generated")
        j.nav("Cohort")
        j.see(f"Table (cohort_{i}.csv)")
        j.idle()  # the summary (its record count) renders after the caption
        body = page.inner_text("body")
        assert f"cohort_{i}.csv" in body and "250" in body
        assert not any(f"cohort_{k}.csv" in body for k in range(SESSIONS) if k != i)
        context.close()


def test_eight_sessions_upload_and_generate_at_once(server, tmp_path):
    files = _cohort_files(tmp_path)
    probe = HealthProbe(server.url)
    start = 0.0

    def pressed() -> None:  # runs once, when the last session reaches the barrier
        nonlocal start
        start = time.perf_counter()
        probe.start()

    ready = threading.Barrier(SESSIONS, action=pressed)
    sessions = [Session(i, path, server.url, ready) for i, path in enumerate(files)]
    for s in sessions:
        s.start()
    for s in sessions:
        s.join(timeout=600)
    probe.stop.set()
    if probe.is_alive():
        probe.join()
    for s in sessions:
        assert not s.is_alive(), f"session {s.i} did not finish"
        if s.error is not None and not isinstance(s.error, threading.BrokenBarrierError):
            raise AssertionError(f"session {s.i} failed") from s.error
    for s in sessions:
        assert s.error is None, f"session {s.i}: {s.error!r}"
    seconds = max(s.generated_at for s in sessions) - start

    log = server.log.read_text()
    loads = log.count("loaded checkpoint ehrdiff-physionet2012 (")
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
