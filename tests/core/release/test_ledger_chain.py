"""The ledger's hash chain: a clean ledger verifies; every kind of database tampering (a row
deleted in the middle, first or last, rows reordered, each important field edited, a row
re-signed with another key, the key table edited, a forged head) is found by
``python -m core.report verify-ledger`` with a message naming the row; an old ledger is
migrated on open; a key rotation keeps old releases verifiable; two processes recording at once
keep one chain. The same on PostgreSQL: tests/core/release/test_ledger.py."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.errors import ConfigError
from core.release import settings
from core.release.chain import GENESIS, ROW_FIELDS, row_hash
from core.release.ledger import HEAD, KEYS, RELEASES, Ledger
from core.release.publish import publish
from core.release.signing import (
    key_id,
    load_or_create_key,
    load_public_key,
    public_pem,
    sign_manifest,
)
from core.report.__main__ import main as report_main
from tests.core.release.test_ledger import STEWARD_ACTOR, manifest

FORK = mp.get_context("fork")  # no interpreter start, no torch import: milliseconds


def server_key() -> Path:
    return settings.signing_key_path()


def fill(n: int = 4) -> Ledger:
    """The default ledger with ``n`` releases signed by the server key (ids 1..n)."""
    ledger = Ledger(settings.ledger_url())
    for i in range(n):
        publish(manifest(f"{i:x}" * 64), STEWARD_ACTOR, ledger=ledger)
    return ledger


def verify_ledger(capsys, *keys: Path, url: str | None = None) -> tuple[int, str]:
    argv = ["verify-ledger", "--url", url or settings.ledger_url()]
    for k in keys:
        argv += ["--public-key", str(k)]
    code = report_main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def rows(conn: sa.Connection) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(sa.select(RELEASES).order_by("id"))]


def rechain(conn: sa.Connection) -> None:
    """What a careful intruder does after an edit: every row hash and link computed again (the
    head they cannot sign)."""
    previous = GENESIS
    for row in rows(conn):
        row["prev_hash"] = previous
        previous = row_hash(row)
        conn.execute(
            RELEASES.update()
            .where(RELEASES.c.id == row["id"])
            .values(prev_hash=row["prev_hash"], row_hash=previous)
        )


def edit(column: str, value: object, row: int = 2):
    def tamper(conn: sa.Connection) -> None:
        conn.execute(RELEASES.update().where(RELEASES.c.id == row).values({column: value}))

    return tamper


def delete(row: int):
    def tamper(conn: sa.Connection) -> None:
        conn.execute(RELEASES.delete().where(RELEASES.c.id == row))

    return tamper


def swap_rows(conn: sa.Connection) -> None:
    """Rows 2 and 3 change places (their ids swapped)."""
    for old, new in ((2, -2), (3, 2), (-2, 3)):
        conn.execute(RELEASES.update().where(RELEASES.c.id == old).values(id=new))


def edit_manifest(conn: sa.Connection) -> None:
    """The stored manifest's override reason changed (its row's manifest_sha256 left alone)."""
    row = rows(conn)[1]
    body = json.loads(row["manifest"]) | {"override_reason": "approved by the board"}
    edit("manifest", json.dumps(body, sort_keys=True))(conn)


def edit_and_rechain(conn: sa.Connection) -> None:
    edit("subject", "someone.else@example.org")(conn)
    rechain(conn)


def resign_with_another_key(conn: sa.Connection) -> None:
    """Row 2's manifest edited and signed again with an intruder's key, which is added to the
    key table, and the chain computed again: only the signed head and trust can tell."""
    intruder = load_or_create_key(server_key().parent / "intruder" / "key.pem")
    row = rows(conn)[1]
    forged = sign_manifest(json.loads(row["manifest"]) | {"verdict": "pass"}, intruder)
    kid = key_id(intruder.public_key())
    conn.execute(
        RELEASES.update()
        .where(RELEASES.c.id == 2)
        .values(manifest=json.dumps(forged, sort_keys=True), key_id=kid, verdict="pass")
    )
    pem = public_pem(intruder.public_key()).decode()
    conn.execute(KEYS.insert().values(key_id=kid, public_key=pem, first_used=row["released_at"]))
    rechain(conn)


def replace_table_key(conn: sa.Connection) -> None:
    """The key table's public key for the server key replaced by an intruder's."""
    intruder = load_or_create_key(server_key().parent / "intruder" / "key.pem")
    pem = public_pem(intruder.public_key()).decode()
    conn.execute(KEYS.update().values(public_key=pem))


def drop_table_key(conn: sa.Connection) -> None:
    conn.execute(KEYS.delete())


def append_forged_row(conn: sa.Connection) -> None:
    """A fifth row copied from the fourth, chained correctly, without the head."""
    last = rows(conn)[-1]
    forged = {**last, "id": 5, "subject": "ghost@example.org", "prev_hash": last["row_hash"]}
    forged["row_hash"] = row_hash(forged)
    conn.execute(RELEASES.insert().values(**forged))


def forge_head(conn: sa.Connection) -> None:
    """Row 4 deleted and the head signed again, by the intruder's key."""
    from core.release.ledger import _read_head

    delete(4)(conn)
    intruder = load_or_create_key(server_key().parent / "intruder" / "key.pem")
    head = _read_head(conn)
    last = rows(conn)[-1]
    forged = type(head)(3, last["id"], last["row_hash"], head.keys_sha256).signed(intruder)
    conn.execute(HEAD.update().values(**forged.__dict__))


TAMPERS = {
    "delete a middle row": (delete(2), "FAIL row 3: does not follow row 1"),
    "delete the first row": (delete(1), "FAIL row 2: does not follow the start of the ledger"),
    "delete the last row": (
        delete(4),
        "FAIL head: the signed head counts 4 rows, the ledger has 3",
    ),
    "reorder two rows": (swap_rows, "FAIL row 2: its content does not match its row hash"),
    "edit the subject": (
        edit("subject", "mallory@example.org"),
        "FAIL row 2: its content does not match its row hash",
    ),
    "edit the display name": (edit("display_name", "Mallory"), "FAIL row 2: its content"),
    "edit the roles": (edit("roles", "analyst"), "FAIL row 2: its content"),
    "edit the time": (edit("released_at", "2020-01-01T00:00:00+00:00"), "FAIL row 2: its content"),
    "edit the verdict": (
        edit("verdict", "pass (edited)"),
        "FAIL row 2: its verdict is not the one in its signed manifest",
    ),
    "edit the override reason": (
        edit("override_reason", "approved"),
        "FAIL row 2: its override_reason is not the one in its signed manifest",
    ),
    "edit the set's sha256": (
        edit("synthetic_sha256", "f" * 64),
        "FAIL row 2: its synthetic_sha256 is not the one",
    ),
    "edit the manifest": (edit_manifest, "FAIL row 2: its signed manifest does not verify"),
    "edit a row and chain again": (edit_and_rechain, "FAIL head: the signed head ends at row 4"),
    "re-sign a row with another key": (
        resign_with_another_key,
        "FAIL row 2: signed by key",  # ... which no trusted key vouches for
    ),
    "replace a key in the key table": (
        replace_table_key,
        "FAIL key table: the public key stored for key",
    ),
    "delete the key table": (drop_table_key, "FAIL row 1: signed by key"),
    "append a forged row": (
        append_forged_row,
        "FAIL head: the signed head counts 4 rows, the ledger has 5",
    ),
    "forge the head with another key": (forge_head, "FAIL head: signed by key"),
    "delete the head": (
        lambda conn: conn.execute(HEAD.delete()),
        "FAIL head: the chain head is missing or unsigned",
    ),
}


def test_a_clean_ledger_verifies(capsys):
    fill()
    code, out = verify_ledger(capsys, server_key().with_suffix(".pub.pem"))
    assert code == 0 and "LEDGER INTACT" in out and "4 rows" in out and "FAIL" not in out
    assert verify_ledger(capsys)[0] == 0  # by default: this server's public key


@pytest.mark.parametrize("tamper", list(TAMPERS), ids=list(TAMPERS))
def test_every_kind_of_tampering_is_found_naming_the_row(capsys, tamper):
    ledger = fill()
    change, expected = TAMPERS[tamper]
    with ledger.engine.begin() as conn:
        change(conn)
    code, out = verify_ledger(capsys, server_key().with_suffix(".pub.pem"))
    assert code == 1 and "TAMPERED" in out, out
    assert expected in out, out


def test_the_swapped_key_is_named_as_untrusted_and_the_table_change_is_seen(capsys):
    ledger = fill()
    with ledger.engine.begin() as conn:
        resign_with_another_key(conn)
    _, out = verify_ledger(capsys, server_key().with_suffix(".pub.pem"))
    intruder = key_id(load_public_key(server_key().parent / "intruder" / "key.pub.pem"))
    assert f"FAIL row 2: signed by key {intruder}, which no trusted key vouches for" in out
    assert "FAIL key table: it differs from the key table the signed head covers" in out
    # the intruder's own key does not help: the head is the server's
    _, out = verify_ledger(capsys, server_key().parent / "intruder" / "key.pub.pem")
    assert "FAIL head: signed by key" in out


def test_without_a_trusted_key_the_signer_is_unknown_and_tampering_still_found(capsys):
    ledger = fill(2)
    settings.signing_key_path().with_suffix(".pub.pem").unlink()  # a verifier elsewhere
    code, out = verify_ledger(capsys)
    assert code == 3 and "KEY UNKNOWN" in out and "UNKNOWN KEY keys: no trusted public key" in out
    with ledger.engine.begin() as conn:
        edit("subject", "mallory@example.org")(conn)
    code, out = verify_ledger(capsys)
    assert code == 1 and "FAIL row 2" in out


def test_a_missing_ledger_is_not_verified(capsys, tmp_path):
    code, out = verify_ledger(capsys, url=f"sqlite:///{tmp_path / 'nothing.sqlite3'}")
    assert code == 4 and "no ledger at" in out
    assert not (tmp_path / "nothing.sqlite3").exists()  # the check made none


def test_the_row_hash_covers_every_column():
    assert set(ROW_FIELDS) == {c.name for c in RELEASES.columns} - {"row_hash"}


def test_record_chains_onto_the_signed_head_not_onto_the_last_row(capsys):
    """A row deleted from the end stays missing after the next release: chaining onto whatever
    row is last would hide it."""
    ledger = fill(3)
    with ledger.engine.begin() as conn:
        delete(3)(conn)
    publish(manifest("9" * 64), STEWARD_ACTOR, ledger=ledger)
    code, out = verify_ledger(capsys)
    assert code == 1 and "does not follow row 2" in out


def test_a_ledger_whose_head_was_deleted_records_nothing_more():
    """Making a new head over the rows there would vouch for whatever was done to them."""
    ledger = fill(2)
    with ledger.engine.begin() as conn:
        conn.execute(HEAD.delete())
    with pytest.raises(ConfigError, match="no chain head"):
        publish(manifest("e" * 64), STEWARD_ACTOR, ledger=Ledger(settings.ledger_url()))
    assert len(ledger.entries()) == 2


# --- an old ledger, made before the chain ---------------------------------------------------------
def _old(table: sa.Table, *new: str) -> list[sa.Column]:
    return [
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in table.columns
        if c.name not in new
    ]


OLD = sa.MetaData()
sa.Table("css_releases", OLD, *_old(RELEASES, "kind", "prev_hash", "row_hash"))
sa.Table("css_signing_keys", OLD, *_old(KEYS, "retired_at"))


def old_ledger(url: str, n: int) -> None:
    """A ledger as the previous version wrote it: no chain columns, no head, no retired_at."""
    engine = sa.create_engine(url)
    OLD.create_all(engine)
    key = load_or_create_key(settings.signing_key_path())
    with engine.begin() as conn:
        for i in range(n):
            signed = sign_manifest(manifest(f"{i:x}" * 64), key)
            conn.execute(
                OLD.tables["css_releases"]
                .insert()
                .values(
                    released_at=f"2025-01-0{i + 1}T00:00:00+00:00",
                    subject="dana@example.org",
                    set_name=signed["synthetic_set"],
                    synthetic_sha256=signed["synthetic_sha256"],
                    checkpoint_sha256="k" * 64,
                    cohort_fingerprint="c" * 64,
                    verdict=signed["verdict"],
                    checks=json.dumps(signed["checks"]),
                    manifest_sha256=signed["manifest_sha256"],
                    key_id=signed["signature"]["key_id"],
                    manifest=json.dumps(signed, sort_keys=True),
                )
            )
        conn.execute(
            OLD.tables["css_signing_keys"]
            .insert()
            .values(
                key_id=key_id(key.public_key()),
                public_key=public_pem(key.public_key()).decode(),
                first_used="2025-01-01T00:00:00+00:00",
            )
        )
    engine.dispose()


def test_an_old_ledger_is_migrated_on_open_and_then_verifies(capsys, caplog):
    old_ledger(settings.ledger_url(), 3)
    with caplog.at_level(logging.INFO, logger="core.release.ledger"):
        ledger = Ledger(settings.ledger_url())
    assert "added the hash chain to its 3 existing rows" in caplog.text
    assert "signed with key" in caplog.text
    code, out = verify_ledger(capsys)
    assert code == 0 and "3 rows" in out, out
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="core.release.ledger"):
        publish(manifest("a" * 64), STEWARD_ACTOR, ledger=Ledger(settings.ledger_url()))
    assert "hash chain" not in caplog.text  # migrated once
    assert [r["id"] for r in ledger.entries()] == [4, 3, 2, 1]
    code, out = verify_ledger(capsys)
    assert code == 0 and "4 rows" in out
    with ledger.engine.begin() as conn:
        delete(2)(conn)  # a migrated row is as protected as a new one
    assert verify_ledger(capsys)[0] == 1


def test_an_old_ledger_migrated_without_the_key_is_signed_at_its_next_release(capsys, caplog):
    old_ledger(settings.ledger_url(), 2)
    key = settings.signing_key_path()
    public = key.with_suffix(".pub.pem")
    key.rename(key.with_name("elsewhere.pem"))  # the key lives on another machine
    with caplog.at_level(logging.INFO, logger="core.release.ledger"):
        ledger = Ledger(settings.ledger_url())
    assert "unsigned until the next release" in caplog.text
    code, out = verify_ledger(capsys, public)
    assert code == 1 and "FAIL head: the chain head is missing or unsigned" in out
    key.with_name("elsewhere.pem").rename(key)
    publish(manifest("a" * 64), STEWARD_ACTOR, ledger=ledger)
    assert verify_ledger(capsys, public)[0] == 0


def test_a_chain_whose_columns_were_dropped_is_not_chained_again(release_state):
    fill(2)
    path = release_state / "ledger.sqlite3"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for column in ("row_hash", "prev_hash", "kind"):
            conn.exec_driver_sql(f"ALTER TABLE css_releases DROP COLUMN {column}")
    engine.dispose()
    with pytest.raises(ConfigError, match="the chain was removed"):
        Ledger(settings.ledger_url())


# --- key rotation ---------------------------------------------------------------------------------
def test_rotation_signs_new_releases_with_the_new_key_and_old_ones_still_verify(capsys, tmp_path):
    from core.release.__main__ import main as release_main

    ledger = fill(2)
    old_public = load_public_key(server_key().with_suffix(".pub.pem"))
    old_id = key_id(old_public)
    old_release = tmp_path / "old.json"
    old_release.write_text(json.dumps(ledger.manifest(1)))
    assert release_main(["rotate-key"]) == 0
    out = capsys.readouterr().out
    new_public = load_public_key(server_key().with_suffix(".pub.pem"))
    new_id = key_id(new_public)
    assert new_id != old_id and f"rotated: key {old_id} -> {new_id}; ledger row 3" in out
    retired = server_key().with_name(f"signing-key.{old_id}.pub.pem")
    assert load_public_key(retired) == old_public
    signed, entry = publish(manifest("e" * 64), STEWARD_ACTOR, ledger=ledger)
    assert signed["signature"]["key_id"] == new_id and entry == 4
    keys = {k["key_id"]: k for k in ledger.keys()}
    assert set(keys) == {old_id, new_id} and keys[old_id]["retired_at"]
    rotation = ledger.manifest(3)
    assert rotation["old_key"]["key_id"] == old_id and len(rotation["signatures"]) == 2
    # the chain verifies with the new key, and with only the old one (the rotation leads on)
    assert verify_ledger(capsys, server_key().with_suffix(".pub.pem"))[0] == 0
    code, out = verify_ledger(capsys, retired)
    assert code == 0 and new_id in out.splitlines()[0]
    # an old release still verifies with the key id it recorded
    assert report_main(["verify", str(old_release)]) == 0
    assert report_main(["verify", str(old_release), "--public-key", str(retired)]) == 0
    capsys.readouterr()
    # the retired key signs nothing more (an app still holding it is told to restart)
    with pytest.raises(ConfigError, match=f"{old_id} was retired"):
        ledger.record(
            signed | {"signature": {**signed["signature"], "key_id": old_id}}, STEWARD_ACTOR
        )


def test_a_rotation_row_with_one_signature_removed_is_found(capsys):
    from core.release.__main__ import main as release_main

    ledger = fill(1)
    assert release_main(["rotate-key"]) == 0
    with ledger.engine.begin() as conn:
        row = rows(conn)[1]
        statement = json.loads(row["manifest"])
        statement["signatures"] = statement["signatures"][1:]  # the old key's hand-over gone
        edit("manifest", json.dumps(statement, sort_keys=True), row=2)(conn)
        rechain(conn)
    code, out = verify_ledger(capsys)
    assert code == 1 and "FAIL row 2: key rotation: the old key did not sign it" in out


def test_a_rotation_killed_after_its_ledger_row_is_finished_by_running_it_again(capsys):
    from core.release.__main__ import main as release_main
    from tests.core.fault_harness import run_child

    ledger = fill(1)
    outcome = run_child(lambda ok: release_main(["rotate-key"]), point="rotate.after_ledger")
    assert outcome.killed and outcome.error == ""
    keys = {k["key_id"]: k for k in ledger.keys()}
    assert len(keys) == 2  # the row is there, the new key not yet in place
    assert release_main(["rotate-key"]) == 0
    assert "(recorded before)" in capsys.readouterr().out
    new_id = key_id(load_public_key(server_key().with_suffix(".pub.pem")))
    assert new_id in keys and not keys[new_id]["retired_at"]
    assert not any(p.name.endswith(".next") for p in server_key().parent.iterdir())
    publish(manifest("e" * 64), STEWARD_ACTOR, ledger=ledger)
    assert verify_ledger(capsys)[0] == 0


# --- writers at once ------------------------------------------------------------------------------
def record_many(url: str, key: Path, first: int, n: int, go) -> None:
    go.wait()
    ledger = Ledger(url)
    for i in range(first, first + n):
        publish(manifest(f"{i:04x}" * 16), STEWARD_ACTOR, ledger=ledger, key_path=key)


def concurrent_writers(url: str, key: Path, per_writer: int = 15) -> None:
    load_or_create_key(key)
    Ledger(url)  # made before the race: only the appends compete
    go = FORK.Event()
    writers = [
        FORK.Process(target=record_many, args=(url, key, w * 1000, per_writer, go))
        for w in range(2)
    ]
    for w in writers:
        w.start()
    go.set()
    for w in writers:
        w.join(60)
    assert [w.exitcode for w in writers] == [0, 0]


def assert_one_chain(url: str, key: Path, n: int) -> None:
    ledger = Ledger(url)
    report = ledger.verify([load_public_key(key.with_suffix(".pub.pem"))])
    assert report.ok and report.rows == n, report.findings
    with ledger.engine.connect() as conn:
        links = [r["prev_hash"] for r in rows(conn)]
    assert len(set(links)) == n  # no two rows chained onto the same one: no fork
    assert {r["subject"] for r in ledger.entries()} == {STEWARD_ACTOR.subject}


def concurrent_writers_and_verify(url: str, key: Path, monkeypatch) -> None:
    slow_read_head(monkeypatch)
    concurrent_writers(url, key)
    assert_one_chain(url, key, 30)


def test_two_processes_recording_at_once_keep_one_chain(tmp_path, monkeypatch):
    """The two writers' appends interleave (each widens the gap between reading the head and
    writing, so without the write lock they would chain onto the same row)."""
    slow_read_head(monkeypatch)
    url, key = f"sqlite:///{tmp_path / 'ledger.sqlite3'}", tmp_path / "key.pem"
    concurrent_writers(url, key)
    assert_one_chain(url, key, 30)


def slow_read_head(monkeypatch) -> None:
    import time

    from core.release import ledger as ledger_module

    read = ledger_module._read_head

    def slow(conn, *, lock=False):
        head = read(conn, lock=lock)
        time.sleep(0.01)
        return head

    monkeypatch.setattr(ledger_module, "_read_head", slow)
