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


def test_the_ledger_url_can_come_from_a_mounted_secret_file(
    release_state: Path, tmp_path, monkeypatch
):
    """A container gets the PostgreSQL URL (with its password) as a mounted secret file."""
    secret = tmp_path / "ledger-url"
    secret.write_text("\n  postgresql+psycopg://css:s3cret@db/css  \n")
    monkeypatch.setenv("CSS_LEDGER_URL_FILE", str(secret))
    assert settings.ledger_url() == "postgresql+psycopg://css:s3cret@db/css"
    assert settings.ledger_url_configured()
    monkeypatch.setenv("CSS_LEDGER_URL", "sqlite:///elsewhere.sqlite3")  # the variable wins
    assert settings.ledger_url() == "sqlite:///elsewhere.sqlite3"


@pytest.mark.parametrize("content", [None, "s3cret-but-no-url\n", ""])
def test_a_ledger_url_file_that_is_missing_or_holds_no_url_is_a_clear_error(
    release_state: Path, tmp_path, monkeypatch, capsys, content
):
    secret = tmp_path / "ledger-url"
    if content is not None:
        secret.write_text(content)
    monkeypatch.setenv("CSS_LEDGER_URL_FILE", str(secret))
    with pytest.raises(ConfigError, match="CSS_LEDGER_URL_FILE names .*ledger-url") as err:
        settings.ledger_url()
    assert "s3cret" not in str(err.value)  # the file's content never goes into a message
    assert report_main(["verify-ledger"]) == 4  # nothing judged: an outage, not tampering
    assert "cannot verify the ledger: CSS_LEDGER_URL_FILE names" in capsys.readouterr().err


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


@pytest.fixture
def pg_database(postgres, request) -> str:
    """A new, empty database on the module's server, for one test."""
    import hashlib

    import sqlalchemy as sa

    name = "t_" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return postgres.rsplit("/", 1)[0] + "/" + name


def test_postgresql_two_writers_keep_one_chain_and_tampering_is_found(
    pg_database, monkeypatch, tmp_path, capsys
):
    from tests.core.release import test_ledger_chain as chain_tests

    key = tmp_path / "key.pem"
    chain_tests.concurrent_writers_and_verify(pg_database, key, monkeypatch)
    ledger = Ledger(pg_database)
    with ledger.engine.begin() as conn:
        chain_tests.delete(7)(conn)
    public = str(key.with_suffix(".pub.pem"))
    argv = ["verify-ledger", "--url", pg_database, "--public-key", public]
    assert report_main(argv) == 1
    assert "FAIL row 8: does not follow row 6" in capsys.readouterr().out


def test_postgresql_writers_without_the_head_lock_would_fork_the_chain(pg_database, monkeypatch):
    """The control: the same two writers reading the head without FOR UPDATE chain onto the
    same rows, and verify finds the fork (so the test above can fail)."""
    from core.release import ledger as ledger_module
    from tests.core.release import test_ledger_chain as chain_tests

    read = ledger_module._read_head
    monkeypatch.setattr(ledger_module, "_read_head", lambda conn, lock=False: read(conn))
    chain_tests.slow_read_head(monkeypatch)
    key = Path(tempfile.mkdtemp()) / "key.pem"
    # the key recorded before the race (two first uses would clash on the key table instead)
    publish(manifest(), STEWARD_ACTOR, ledger=Ledger(pg_database), key_path=key)
    chain_tests.concurrent_writers(pg_database, key)
    report = Ledger(pg_database).verify([load_public_key(key.with_suffix(".pub.pem"))])
    assert report.tampered and any("does not follow" in f.message for f in report.findings)


def test_postgresql_old_ledger_is_migrated_on_open(pg_database, capsys):
    from tests.core.release import test_ledger_chain as chain_tests

    chain_tests.old_ledger(pg_database, 3)
    ledger = Ledger(pg_database)
    publish(manifest("e" * 64), STEWARD_ACTOR, ledger=ledger)
    assert ledger.verify([load_public_key(settings.signing_key_path().with_suffix(".pub.pem"))]).ok
    assert [r["id"] for r in ledger.entries()] == [4, 3, 2, 1]


# --- the trust anchor, the key file and a damaged or unwritable ledger -----------------------------
def test_a_manifest_signed_by_an_unknown_key_is_not_verified_without_a_trusted_key(
    tmp_path, capsys
):
    from core.release.signing import sign_manifest

    stranger = load_or_create_key(tmp_path / "stranger.pem")
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(sign_manifest(manifest(), stranger, "https://example.org/k.pem")))
    data = tmp_path / "set.csv"
    data.write_bytes(RELEASED)
    # a recipient with no key of this server (none made in this state folder)
    assert not settings.signing_key_path().exists()
    assert report_main(["verify", str(forged), str(data)]) == 3
    out = capsys.readouterr().out
    assert "SIGNER UNKNOWN" in out and "VERIFIED" not in out and "https://example.org/k.pem" in out
    assert report_main(["verify", str(forged), str(data), "--trust-embedded-key"]) == 0
    capsys.readouterr()
    # the server's own key is not the stranger's: rejected, whatever the flag says
    publish(manifest(), STEWARD_ACTOR)
    assert report_main(["verify", str(forged), str(data), "--trust-embedded-key"]) == 1
    assert "not a trusted one" in capsys.readouterr().out
    key = tmp_path / "stranger.pub.pem"
    assert report_main(["verify", str(forged), str(data), "--public-key", str(key)]) == 0


def test_the_manifest_names_its_trusted_key_and_the_ledger_keeps_every_signing_key(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("CSS_PUBLIC_KEY_URL", "https://hospital.example/releases.pub.pem")
    ledger = Ledger(settings.ledger_url())
    signed, _ = publish(manifest(), STEWARD_ACTOR, ledger=ledger)
    kid = signed["signature"]["key_id"]
    assert signed["trusted_key"] == {
        "key_id": kid,
        "published_at": "https://hospital.example/releases.pub.pem",
    }
    moved = {**signed, "trusted_key": {**signed["trusted_key"], "published_at": "evil"}}
    trusted = load_public_key(settings.signing_key_path().with_suffix(".pub.pem"))
    assert not verify_manifest(moved, RELEASED, trusted).ok  # covered by the signature
    # a new server key: releases signed with the old one still verify by the ledger's table
    old_key = settings.signing_key_path()
    old_key.rename(tmp_path / "retired.pem")
    _, _ = publish(manifest("e" * 64), STEWARD_ACTOR, ledger=ledger)
    keys = ledger.public_keys()
    assert len(keys) == 2 and kid in keys
    path = tmp_path / "old.json"
    path.write_text(json.dumps(signed))
    assert report_main(["verify", str(path)]) == 0


def test_an_empty_or_damaged_key_is_a_clear_error_and_a_lost_public_half_is_made_again(
    release_state: Path,
):
    path = settings.signing_key_path()
    key = load_or_create_key(path)
    path.with_suffix(".pub.pem").unlink()
    assert load_or_create_key(path).public_key() == key.public_key()
    assert load_public_key(path.with_suffix(".pub.pem")) == key.public_key()
    for damage in (b"", b"-----BEGIN PRIVATE KEY-----\ntruncated"):
        path.write_bytes(damage)
        with pytest.raises(ConfigError, match=f"{path}.*(move it aside|backup)"):
            load_or_create_key(path)
    assert not [p for p in release_state.iterdir() if ".tmp-" in p.name]


def test_a_damaged_ledger_row_is_listed_as_damaged_and_the_rest_stay_viewable():
    from core.release.ledger import RELEASES

    ledger = Ledger(settings.ledger_url())
    _, first = publish(manifest(), STEWARD_ACTOR, ledger=ledger)
    _, second = publish(manifest("e" * 64), STEWARD_ACTOR, ledger=ledger)
    with ledger.engine.begin() as conn:
        conn.execute(RELEASES.update().where(RELEASES.c.id == first).values(manifest="{not json"))
    states = {r["id"]: r["state"] for r in ledger.entries()}
    assert states[second] == "ok" and states[first].startswith("damaged")
    with pytest.raises(ConfigError, match="damaged"):
        ledger.manifest(first)
    assert ledger.manifest(second)["synthetic_sha256"] == "e" * 64


def test_a_ledger_that_cannot_be_written_is_a_storage_error_without_sql(release_state: Path):
    from core.errors import StorageError

    Ledger(settings.ledger_url()).public_keys()  # creates the file and its tables
    path = release_state / "ledger.sqlite3"
    read_only = Ledger(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(StorageError, match="read-only") as caught:
        publish(manifest(), STEWARD_ACTOR, ledger=read_only)
    assert "INSERT" not in str(caught.value) and "synthetic_sha256" not in str(caught.value)


def test_a_release_whose_provenance_holds_a_table_is_not_recorded(tmp_path):
    import pandas as pd

    table = pd.DataFrame(
        {"id": ["REC-123457", "REC-123464", "REC-123471"], "hr": [91.2, 77.5, 102.7]}
    )
    leaky = manifest() | {"provenance": {"source": "upload", "rows": str(table)}}
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    with pytest.raises(ConfigError, match="'provenance/rows' holds the repr of a data object"):
        ledger.record(leaky, STEWARD_ACTOR)
    assert ledger.entries() == []
    assert ledger.record(manifest(), STEWARD_ACTOR) == 1
