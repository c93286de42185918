"""Sign-in and roles in a real browser: the app (`streamlit run app.py` with `[auth]` secrets)
against a real OpenID Connect provider process on loopback (oidc-provider-mock). An analyst
signs in and reviews but cannot release; a steward releases, the ledger names them, and a
manifest edited after the release is rejected on the Ledger page.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser.conftest import (
    STEP_TIMEOUT_MS,
    Journey,
    _free_port,
    demo_cohort,
    new_page,
    release_reviewed_set,
    review_the_demo_baseline,
    scan_server,
    start_server,
    wait_for,
)

pytestmark = pytest.mark.browser
pytest.importorskip("oidc_provider_mock", reason="oidc-provider-mock is absent")
pytest.importorskip("authlib", reason="Authlib (needed by st.login) is absent")

USERS = [
    {"sub": "dana@example.org", "name": "Dana Steward", "email": "dana@example.org", "roles": ["steward"]},
    {"sub": "ana@example.org", "name": "Ana Analyst", "email": "ana@example.org", "roles": ["analyst"]},
]  # fmt: skip


@pytest.fixture(scope="module")
def signed_in_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth")
    idp_port, app_port = _free_port(), _free_port()
    idp_log = folder / "idp.log"
    with idp_log.open("wb") as out:
        idp = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--port", str(idp_port)]
            + [a for u in USERS for a in ("--user-claims", json.dumps(u))],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    issuer = f"http://127.0.0.1:{idp_port}"
    wait_for(f"{issuer}/.well-known/openid-configuration", idp, idp_log)
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(16)}"\n'
        'client_id = "clinical-synthesis-studio"\n'
        'client_secret = "test-secret"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
    )
    try:
        with start_server(
            folder, args=("--secrets.files", str(secrets_file)), port=app_port
        ) as server:
            yield server, folder
    finally:
        idp.terminate()
        idp.wait(timeout=30)


def sign_in(j: Journey, url: str, subject: str) -> None:
    j.page.goto(url)
    j.see("sign in with your organisation's account")
    j.shot("sign-in-screen")
    j.page.get_by_role("button", name="Sign in").click()
    # the provider's own authorisation page: one button per predefined user
    j.page.get_by_role("button", name=subject, exact=True).click()
    j.see("System status")
    j.idle()


def test_roles_decide_who_may_release_and_the_ledger_names_them(
    signed_in_server, browser, tmp_path
):
    server, folder = signed_in_server

    context, page = new_page(browser)
    j = Journey(page, "sign-in-analyst")
    sign_in(j, server.url, "ana@example.org")
    j.see("Ana Analyst (analyst)")
    assert page.locator('[data-testid="stSidebarNav"] a', has_text="Ledger").count() == 0
    review_the_demo_baseline(j)
    j.see("Releasing a synthetic set needs the data steward role")
    page.get_by_text("needs the data steward role").first.scroll_into_view_if_needed()
    j.shot("analyst-cannot-release")
    assert page.get_by_role("button", name="Release: sign and record in the ledger").count() == 0
    assert page.get_by_text("Override: release this set").count() == 0
    context.close()

    context, page = new_page(browser)
    j = Journey(page, "sign-in-steward")
    sign_in(j, server.url, "dana@example.org")
    j.see("Dana Steward (steward)")
    review_the_demo_baseline(j)
    release_reviewed_set(j, "browser test: demo baseline")
    j.shot("steward-released")
    with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:
        page.get_by_role("button", name="Download signed release manifest (JSON)").click()
    manifest_path = tmp_path / "release.json"
    download.value.save_as(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["signature"]["algorithm"] == "Ed25519"

    j.nav("Ledger")
    j.see("Signed manifest of release 1")  # the table itself is drawn on a canvas
    j.shot("ledger")
    from core.release.ledger import Ledger

    (entry,) = Ledger(f"sqlite:///{folder / 'state' / 'ledger.sqlite3'}").entries()
    assert entry["subject"] == "dana@example.org" and entry["roles"] == "steward"
    assert entry["manifest_sha256"] == manifest["manifest_sha256"]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**manifest, "verdict": "pass"}))
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(tampered))
    j.see("Rejected")
    page.get_by_text("Rejected").first.scroll_into_view_if_needed()
    j.shot("tampered-manifest-rejected")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
        str(manifest_path)
    )
    j.see("Verified: signed by this server")
    page.get_by_text("Verified: signed by this server").first.scroll_into_view_if_needed()
    j.shot("manifest-verified")
    context.close()

    # the command line agrees, with the server's public key
    key = Path(folder / "state" / "signing-key.pub.pem")
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.report",
            "verify",
            str(manifest_path),
            "--public-key",
            str(key),
        ],
        capture_output=True,
        text=True,
    )
    bad = subprocess.run(
        [sys.executable, "-m", "core.report", "verify", str(tampered), "--public-key", str(key)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "VERIFIED" in ok.stdout, ok.stdout + ok.stderr
    assert bad.returncode == 1 and "REJECTED" in bad.stdout
    scan_server(server, demo_cohort(), manifest_path, tampered, folder / "idp.log")
