"""The image and the compose file, for real (issue #36): build the image from the wheelhouse with
podman, start it, use it in chromium through the published port (train a model, release a set),
replace the container and find the model and the ledger row on the state volume; then the same
with PostgreSQL as the ledger, from deploy/compose.yaml with its secrets, across `down` and `up`.

Outside `pytest -q` (testpaths is tests/): it takes minutes. .ci/run runs it after the README's
test command; by hand:

    deploy/make-wheelhouse.sh && sudo deploy/make-base.sh
    CONTAINERS_CONF=deploy/containers.conf .venv/bin/python -m pytest -q deploy/tests

Skipped, with the reason, when a prerequisite is missing: podman able to run containers, the base
image (CSS_TEST_BASE_IMAGE, default localhost/css-base:bookworm from deploy/make-base.sh), the
wheelhouse, chromium and Playwright; podman-compose for the PostgreSQL half. Figures (build
time, image size, time to health, what survived) go to test-artifacts/container/figures.txt, the
containers' logs beside it, screenshots to test-artifacts/browser/container-*.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import (
    Journey,
    _free_port,
    expect,
    launch,
    new_page,
    playwright,
    release_reviewed_set,
    review_the_demo_baseline,
)

pytestmark = [pytest.mark.container, pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test-artifacts" / "container"
BASE_IMAGE = os.environ.get("CSS_TEST_BASE_IMAGE", "localhost/css-base:bookworm")
IMAGE = "localhost/clinical-synthesis-studio:container-test"
PG_IMAGE = "localhost/css-postgres:container-test"
STATE = "/var/lib/clinical-synthesis-studio"  # CSS_STATE_DIR in the image
APP, VOLUME = "css-container-test-app", "css-container-test-state"
RESTORED = "css-container-test-restored"  # the state volume's backup, restored
PROJECT = "css-container-test"  # the compose project
MODEL = "container test model"


def sh(*args: str, timeout: float = 600, check: bool = True, env: dict | None = None):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode:
        pytest.fail(
            f"{' '.join(args)} exited {r.returncode}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
        )
    return r


def figure(line: str) -> None:
    """One measured line for the report: printed and appended to figures.txt."""
    print(line)
    with (OUT / "figures.txt").open("a") as f:
        f.write(line + "\n")


@pytest.fixture(scope="module")
def podman() -> str:
    exe = shutil.which("podman")
    if exe is None:
        pytest.skip("podman is not installed (Debian: apt-get install podman runc)")
    info = sh(exe, "info", check=False, timeout=120)
    if info.returncode:
        pytest.skip(f"podman cannot run here: {(info.stderr.strip().splitlines() or ['?'])[-1]}")
    if sh(exe, "image", "exists", BASE_IMAGE, check=False).returncode:
        pytest.skip(
            f"the base image {BASE_IMAGE} is absent: make it with `sudo deploy/make-base.sh`, or "
            "pull python:3.11-slim and set CSS_TEST_BASE_IMAGE=docker.io/library/python:3.11-slim"
        )
    probe = sh(exe, "run", "--rm", BASE_IMAGE, "true", check=False, timeout=120)
    if probe.returncode:
        why = (probe.stderr.strip().splitlines() or ["no message"])[-1]
        if "rlimit" in why:
            why += " (set CONTAINERS_CONF=deploy/containers.conf)"
        pytest.skip(f"podman cannot run containers here: {why}")
    if not (ROOT / "deploy" / "wheelhouse" / "SHA256SUMS").is_file():
        pytest.skip(
            "no wheelhouse in deploy/wheelhouse: run deploy/make-wheelhouse.sh (needs PyPI)"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "figures.txt").write_text("")
    return exe


@pytest.fixture(scope="module")
def image(podman: str) -> str:
    start = time.monotonic()
    sh(podman, "build", "--format", "docker", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
       "-t", IMAGE, str(ROOT), timeout=1800)  # fmt: skip
    seconds = time.monotonic() - start
    size = int(sh(podman, "image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    figure(f"image: built in {seconds:.0f} s on {BASE_IMAGE}, {size / 1e9:.2f} GB")
    assert (
        sh(podman, "image", "inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip()
        == "app"
    )
    wheels = sh(podman, "run", "--rm", IMAGE, "find", "/opt", "/app", "/tmp", "-name", "*.whl")
    assert wheels.stdout == "", "a wheel stayed in the image"
    return IMAGE


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def wait_healthy(podman: str, container: str, port: int, seconds: float = 180) -> float:
    """Seconds until /_stcore/health answers 200 through the published port."""
    start, url = time.monotonic(), f"http://127.0.0.1:{port}/_stcore/health"
    while time.monotonic() - start < seconds:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.5)
    logs = sh(podman, "logs", container, check=False)
    pytest.fail(f"{url} did not answer in {seconds:.0f} s:\n{(logs.stdout + logs.stderr)[-3000:]}")


def run_app(podman: str, port: int) -> float:
    """A new app container on the state volume; seconds from `podman run` to health."""
    start = time.monotonic()
    sh(podman, "run", "-d", "--name", APP, "-p", f"127.0.0.1:{port}:8501",
       "-v", f"{VOLUME}:{STATE}", IMAGE)  # fmt: skip
    wait_healthy(podman, APP, port)
    return time.monotonic() - start


def open_home(browser, url: str, name: str) -> tuple:
    """The landing page in a new browser context. Starting a container adds network interfaces
    to this host; chromium then fails the requests in flight with ERR_NETWORK_CHANGED and the
    page stays blank: such a load is tried again (at most twice)."""
    context, page = new_page(browser)
    changed: list[str] = []
    page.on(
        "requestfailed",
        lambda r: (
            changed.append(r.failure or "") if "NETWORK_CHANGED" in (r.failure or "") else None
        ),
    )
    j = Journey(page, name)
    for attempt in range(3):
        changed.clear()
        page.goto(url)
        try:
            page.get_by_text("System status").first.wait_for(timeout=60_000)
            break
        except playwright.TimeoutError:
            if not changed or attempt == 2:
                j.shot("failed-waiting")
                raise
            print(f"{name}: the page load met ERR_NETWORK_CHANGED; loading it again")
    j.idle()
    return context, page, j


def train_a_model(j: Journey) -> None:
    """Train a small model on the demo cohort: saved in the model store as MODEL."""
    j.load_demo_cohort(30_000)
    j.nav("Generate")
    j.page.get_by_text("Train a model on the session cohort").first.click()
    j.idle()
    steps = j.page.get_by_role("spinbutton", name="Training steps")
    steps.fill("100")
    steps.press("Enter")
    j.idle()
    j.choose("Network size", "small")
    name = j.page.get_by_role("textbox", name="Model name")
    name.fill(MODEL)
    name.press("Enter")
    j.idle()
    j.button("Start training")
    j.see("saved it in the model store")
    j.shot("trained-and-stored")


def release_the_demo_baseline(j: Journey) -> None:
    """Review the demo baseline and release it: the ledger gets row 1."""
    review_the_demo_baseline(j)
    release_reviewed_set(j, "container test: demo baseline")
    j.shot("released")


def find_the_release(browser, url: str, name: str, model: bool) -> None:
    """In a fresh browser context: the Ledger page shows release 1 and, with ``model``, the
    Models page offers MODEL."""
    context, page, j = open_home(browser, url, name)
    if model:
        j.nav("Models")
        j.see("Stored model")
        expect(page.get_by_role("combobox", name="Stored model")).to_have_value(MODEL)
        j.shot("models")
    j.nav("Ledger")
    j.see("Signed manifest of release 1")
    j.shot("ledger")
    assert page.locator('[data-testid="stException"]').count() == 0
    context.close()


def verify_ledger(podman: str, container: str | None, volume: str = "", rows: int = 1) -> str:
    """`python -m core.report verify-ledger` in the container (or, given ``volume``, in a new
    one on that volume): intact, with ``rows`` rows. Its first line."""
    where = ["exec", container] if container else ["run", "--rm", "-v", volume, IMAGE]
    r = sh(podman, *where, "python", "-m", "core.report", "verify-ledger", check=False)
    assert r.returncode == 0 and "LEDGER INTACT" in r.stdout, r.stdout + r.stderr
    assert f": {rows} rows" in r.stdout, r.stdout
    return r.stdout.splitlines()[0]


def save_log(podman: str, container: str, name: str) -> None:
    logs = sh(podman, "logs", container, check=False)
    (OUT / f"{name}.log").write_text(logs.stdout + logs.stderr)


def test_the_image_keeps_the_model_store_and_ledger_on_its_volume(podman, image, browser, tmp_path):
    sh(podman, "rm", "-f", APP, check=False)
    sh(podman, "volume", "rm", "-f", VOLUME, RESTORED, check=False)
    port, url = (p := _free_port()), f"http://127.0.0.1:{p}"
    try:
        figure(f"sqlite: health {run_app(podman, port):.1f} s after podman run")
        assert sh(podman, "exec", APP, "id", "-u").stdout.strip() == "10001"  # not root
        context, page, j = open_home(browser, url, "container-sqlite")
        body = page.inner_text("body")
        shipped = [p for p in (ROOT / "checkpoints").iterdir() if p.is_dir()]
        assert body.count("verified,") == len(shipped), body  # every shipped checkpoint
        assert "Sign-in: off (one local user)" in body
        j.shot("home")
        train_a_model(j)
        release_the_demo_baseline(j)
        context.close()
        save_log(podman, APP, "app-sqlite-first")

        start = time.monotonic()  # what an upgrade does: a new container, the same volume
        sh(podman, "stop", APP)
        sh(podman, "rm", APP)
        stopped = time.monotonic() - start
        health = run_app(podman, port)
        figure(f"sqlite: container replaced (stop+rm {stopped:.1f} s), health {health:.1f} s")
        listed = sh(podman, "exec", APP, "python", "-m", "core.store", "list").stdout
        assert MODEL in listed, listed
        sh(podman, "exec", APP, "python", "-m", "core.store", "verify", MODEL)
        head = verify_ledger(podman, APP)
        files = sh(podman, "exec", APP, "ls", STATE).stdout.split()
        assert {"ledger.sqlite3", "signing-key.pem", "models"} <= set(files), files
        find_the_release(browser, url, "container-sqlite-replaced", model=True)
        figure(f"sqlite restart check: '{MODEL}' listed and verified; {head}; LEDGER INTACT")

        # the state volume's backup as docs/deployment.md takes it, restored into another volume
        backup = tmp_path / "state.tar"
        sh(podman, "volume", "export", VOLUME, "--output", str(backup))
        sh(podman, "volume", "create", RESTORED)
        sh(podman, "volume", "import", RESTORED, str(backup))
        restored = sh(podman, "run", "--rm", "-v", f"{RESTORED}:{STATE}", IMAGE,
                      "python", "-m", "core.store", "verify", MODEL)  # fmt: skip
        verify_ledger(podman, None, f"{RESTORED}:{STATE}")
        figure(f"sqlite backup: volume export/import ({backup.stat().st_size / 1e6:.1f} MB), "
               f"model verified ({restored.stdout.strip()[:60]}), ledger intact")  # fmt: skip

        # key rotation inside the container: a rotation row, and the chain still verifies
        sh(podman, "exec", APP, "python", "-m", "core.release", "rotate-key")
        head = verify_ledger(podman, APP, rows=2)
        figure(f"sqlite key rotation: rotate-key, then {head}; LEDGER INTACT")
    finally:
        save_log(podman, APP, "app-sqlite")
        sh(podman, "rm", "-f", APP, check=False)
        sh(podman, "volume", "rm", "-f", VOLUME, RESTORED, check=False)


def podman_compose() -> str:
    beside = Path(sys.executable).parent / "podman-compose"
    exe = str(beside) if beside.exists() else shutil.which("podman-compose")
    if exe is None:
        pytest.skip("podman-compose is absent (pip install -r requirements-dev.txt)")
    return exe


def test_compose_with_postgresql_keeps_the_ledger_across_down_and_up(
    podman, image, browser, tmp_path
):
    compose = podman_compose()
    start = time.monotonic()
    sh(podman, "build", "--format", "docker", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
       "-t", PG_IMAGE, str(ROOT / "deploy" / "postgres"), timeout=900)  # fmt: skip
    figure(f"postgres image (deploy/postgres): built in {time.monotonic() - start:.0f} s")
    secrets = tmp_path / "secrets"
    sh(str(ROOT / "deploy" / "make-secrets.sh"), str(secrets))
    port = _free_port()
    env = {
        **os.environ,
        "CSS_IMAGE": IMAGE,
        "CSS_POSTGRES_IMAGE": PG_IMAGE,
        "CSS_PORT": f"127.0.0.1:{port}",
        "CSS_SECRETS_DIR": str(secrets),
    }

    def compose_run(*args: str, check: bool = True):
        file = str(ROOT / "deploy" / "compose.yaml")
        return sh(compose, "-f", file, "-p", PROJECT, *args, env=env, check=check, timeout=600)

    def container(service: str) -> str:
        ids = sh(podman, "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}",
                 "--filter", f"label=com.docker.compose.service={service}").stdout.split()  # fmt: skip
        assert len(ids) == 1, f"{service}: {ids}"
        return ids[0]

    def up() -> tuple[str, str, float]:
        """The two containers, and seconds from `up -d` to the app's health."""
        start = time.monotonic()
        compose_run("up", "-d")
        app = container("app")
        wait_healthy(podman, app, port)
        return app, container("db"), time.monotonic() - start

    compose_run("down", "-v", check=False)  # a run interrupted before
    url = f"http://127.0.0.1:{port}"
    app = db = ""
    try:
        app, db, seconds = up()
        figure(f"compose (app + PostgreSQL): health {seconds:.1f} s after up -d")
        context, page, j = open_home(browser, url, "container-postgres")
        release_the_demo_baseline(j)
        j.nav("Ledger")
        j.see("postgresql+psycopg://css:***@db:5432/css")  # the app's ledger, password hidden
        j.shot("ledger-postgres")
        context.close()
        rows = sh(podman, "exec", db, "psql", "-U", "css", "-d", "css", "-tAc",
                  "SELECT count(*) FROM css_releases").stdout.strip()  # fmt: skip
        assert rows == "1"
        files = sh(podman, "exec", app, "ls", STATE).stdout.split()
        assert "ledger.sqlite3" not in files, "the app wrote a SQLite ledger beside PostgreSQL"
        key = sh(podman, "exec", app, "cat", f"{STATE}/signing-key.pub.pem").stdout
        save_log(podman, app, "app-postgres-first")

        compose_run("down")  # containers gone, volumes kept
        app, db, seconds = up()
        figure(f"compose: down, up -d again, health {seconds:.1f} s")
        assert sh(podman, "exec", app, "cat", f"{STATE}/signing-key.pub.pem").stdout == key
        head = verify_ledger(podman, app)  # the URL from CSS_LEDGER_URL_FILE, as the app reads it
        assert "postgresql+psycopg://css:***@db:5432/css" in head, head
        find_the_release(browser, url, "container-postgres-again", model=False)
        figure(f"postgres restart check: css_releases {rows} row, same signing key; {head}")

        # the ledger's backup as docs/deployment.md takes it, restored into another database
        dump = sh(podman, "exec", db, "pg_dump", "-U", "css", "-d", "css", "-Fc", "-f", "/tmp/l")
        sh(podman, "exec", db, "createdb", "-U", "css", "css_restored")
        sh(podman, "exec", db, "pg_restore", "-U", "css", "-d", "css_restored", "/tmp/l")
        restored = (secrets / "ledger-url").read_text().strip().removesuffix("/css")
        r = sh(podman, "exec", app, "python", "-m", "core.report", "verify-ledger",
               "--url", f"{restored}/css_restored", check=False)  # fmt: skip
        assert r.returncode == 0 and "LEDGER INTACT" in r.stdout, r.stdout + r.stderr + dump.stderr
        figure("postgres backup: pg_dump -Fc restored into another database, verify-ledger intact")
    finally:
        if app:
            save_log(podman, app, "app-postgres")
        if db:
            save_log(podman, db, "postgres")
        compose_run("down", "-v", check=False)
