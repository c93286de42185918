"""Signed manifests and the audit ledger: a signature that holds, tampering that is caught (by
``verify_manifest`` and by ``python -m core.report verify``), releases recorded in SQLite and in a
real PostgreSQL server started on loopback, and the steward-only rule."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.release import settings
from core.release.ledger import Actor, Ledger
from core.release.publish import STEWARD, publish
from core.release.signing import load_or_create_key, load_public_key, verify_manifest
from core.report.__main__ import main as report_main

STEWARD_ACTOR = Actor("dana@example.org", "Dana", (STEWARD,))
RELEASED = b"record_id,age\ns0,54\n"


def manifest(sha: str | None = None) -> dict:
    import hashlib

    from core.metrics.suite import ReviewKey, ReviewSettings, settings_dict
    from core.release.gate import GateThresholds, GateVerdict, release_manifest

    sha = sha or hashlib.sha256(RELEASED).hexdigest()
    reviewed = ReviewKey("c" * 64, (("seed", 0),), sha, ReviewSettings())  # what was reviewed
    verdict = GateVerdict("EHRDiff set", (), GateThresholds(), reviewed)
    return release_manifest(
        verdict,
        cohort_fingerprint="c" * 64,
        split={"seed": 0},
        provenance={"source": "ehrdiff", "checkpoint sha256": "k" * 64},
        review_settings=settings_dict(ReviewSettings()),
        synthetic_sha256=sha,
    )


def test_the_key_is_made_once_private_to_its_owner_and_reused(release_state: Path):
    path = settings.signing_key_path()
    assert path.parent == release_state
    first = load_or_create_key(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert path.with_suffix(".pub.pem").exists()
    assert load_or_create_key(path).public_key() == first.public_key()


def test_a_signed_manifest_verifies_and_every_kind_of_tampering_is_caught(tmp_path):
    signed, entry = publish(manifest(), STEWARD_ACTOR)
    assert entry == 1 and signed["signature"]["algorithm"] == "Ed25519"
    trusted = load_public_key(settings.signing_key_path().with_suffix(".pub.pem"))
    assert verify_manifest(signed, RELEASED, trusted).ok

    changed = {**signed, "verdict": "pass (edited)"}
    assert not verify_manifest(changed, RELEASED, trusted).ok
    assert not verify_manifest(signed, RELEASED + b"s1,99\n", trusted).ok  # another file
    # re-hashed and re-signed with someone else's key: only the trusted key tells
    from core.release.signing import sign_manifest

    forged = sign_manifest(changed, load_or_create_key(tmp_path / "other.pem"))
    result = verify_manifest(forged, RELEASED, trusted)
    assert not result.ok and [c for c in result.checks if not c[1]][0][0] in (
        "manifest hash",
        "signing key",
    )


def test_verify_command_accepts_the_release_and_rejects_a_tampered_one(tmp_path, capsys):
    signed, _ = publish(manifest(), STEWARD_ACTOR)
    good, bad, data = tmp_path / "m.json", tmp_path / "bad.json", tmp_path / "set.csv"
    good.write_text(json.dumps(signed))
    bad.write_text(json.dumps({**signed, "override_reason": "nobody asked"}))
    data.write_bytes(RELEASED)
    assert report_main(["verify", str(good), str(data)]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    assert report_main(["verify", str(bad), str(data)]) == 1
    out = capsys.readouterr().out
    assert "REJECTED" in out and "FAIL manifest hash" in out


def test_only_a_steward_can_release():
    with pytest.raises(ConfigError, match="steward"):
        publish(manifest(), Actor("ana@example.org", "Ana", ("analyst",)))
    assert Ledger(settings.ledger_url()).entries() == []


def check_ledger(ledger: Ledger) -> None:
    signed, first = publish(manifest(), STEWARD_ACTOR, ledger=ledger)
    _, second = publish(manifest("e" * 64), STEWARD_ACTOR, ledger=ledger)
    rows = ledger.entries()
    assert [r["id"] for r in rows] == [second, first]  # newest first
    row = rows[1]
    assert row["subject"] == "dana@example.org" and row["roles"] == STEWARD
    assert row["synthetic_sha256"] == signed["synthetic_sha256"]
    assert row["checkpoint_sha256"] == "k" * 64 and row["cohort_fingerprint"] == "c" * 64
    assert row["verdict"] == "pass" and row["key_id"] == signed["signature"]["key_id"]
    assert ledger.manifest(first) == signed
    with pytest.raises(ConfigError, match="No release"):
        ledger.manifest(999)


def test_sqlite_ledger_by_default(release_state: Path):
    ledger = Ledger(settings.ledger_url())
    check_ledger(ledger)
    assert (release_state / "ledger.sqlite3").exists()
    assert len(Ledger(settings.ledger_url()).entries()) == 2  # persists across opens


def test_an_unreachable_ledger_is_a_clear_error():
    with pytest.raises(ConfigError, match="Cannot open the audit ledger"):
        Ledger("postgresql+psycopg://css:secret@127.0.0.1:1/none")


def _pg_bin(name: str) -> str | None:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else shutil.which(name)


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server on a free loopback port, for this module only."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL's server is absent (apt-get install postgresql)")
    # not under pytest's root-only temporary folder: the server's own user must reach it
    folder = Path(tempfile.mkdtemp(prefix="css-pg-"))
    data = folder / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser to start PostgreSQL as another user")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "css", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder}"
    try:
        subprocess.run(
            [
                *as_user,
                pg_ctl,
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(folder / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://css@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


def test_postgresql_ledger_on_a_real_server(postgres, monkeypatch):
    monkeypatch.setenv("CSS_LEDGER_URL", postgres)
    ledger = Ledger(settings.ledger_url())
    assert ledger.engine.dialect.name == "postgresql"
    started = time.time()
    check_ledger(ledger)
    assert time.time() - started < 30
    assert "secret" not in ledger.url
