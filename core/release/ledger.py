"""The audit ledger: every release recorded in a database, who released what, when, judged how.

SQLite by default (one file, see :mod:`core.release.settings`), PostgreSQL (or any database
SQLAlchemy speaks) by URL for a shared deployment. A row holds the signed-in subject, the time,
the set's sha256, the model checkpoint's sha256, the real cohort's fingerprint, the gate's
verdict and checks, the override reason and the whole signed manifest. Rows are only added.
Every public key a release was signed with is kept too (``public_keys``), for verifying later.

Rows form a hash chain with a signed head (:mod:`core.release.chain`), so a row deleted,
reordered or edited in the database is found by :meth:`Ledger.verify`. Writers append under
a lock (``BEGIN IMMEDIATE`` in SQLite, ``SELECT ... FOR UPDATE`` on the head row elsewhere),
so two processes recording at once never fork the chain. A ledger made before the chain is
migrated when opened: the columns are added and its rows chained in id order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core import faults
from core.errors import ConfigError, StorageError
from core.manifest_guard import data_in_manifest
from core.release import settings
from core.release.chain import (
    GENESIS,
    RELEASE,
    ROTATION,
    ChainReport,
    Head,
    keys_digest,
    row_hash,
    verify_chain,
)
from core.release.signing import key_id, load_or_create_key, public_pem

log = logging.getLogger(__name__)

SCHEMA = sa.MetaData()
RELEASES = sa.Table(
    "css_releases",
    SCHEMA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("released_at", sa.String(32), nullable=False),  # ISO 8601, UTC
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("display_name", sa.String(255)),
    sa.Column("roles", sa.String(255)),
    sa.Column("set_name", sa.String(255), nullable=False),
    sa.Column("synthetic_sha256", sa.String(64), nullable=False),
    sa.Column("checkpoint_sha256", sa.String(64)),
    sa.Column("cohort_fingerprint", sa.String(64)),
    sa.Column("verdict", sa.String(64), nullable=False),
    sa.Column("checks", sa.Text, nullable=False),  # JSON
    sa.Column("override_reason", sa.Text),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(32)),
    sa.Column("manifest", sa.Text, nullable=False),  # the signed manifest, JSON
    # the hash chain (nullable: added to older ledgers by the migration on open)
    sa.Column("kind", sa.String(16)),  # "release" or "key-rotation"
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("row_hash", sa.String(64)),
)
CHAIN_COLUMNS = ("kind", "prev_hash", "row_hash")
COLUMNS = [c.name for c in RELEASES.columns if c.name not in ("manifest", "checks", "prev_hash")]
# every public key a release was signed with, so releases signed before a key change still
# verify against a key this server vouched for
KEYS = sa.Table(
    "css_signing_keys",
    SCHEMA,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("public_key", sa.Text, nullable=False),  # PEM
    sa.Column("first_used", sa.String(32), nullable=False),
    sa.Column("retired_at", sa.String(32)),  # set by a key rotation
)
# one row (id 1): the chain head, signed with the server key after every write
HEAD = sa.Table(
    "css_chain_head",
    SCHEMA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("last_id", sa.Integer),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("keys_sha256", sa.String(64), nullable=False),
    sa.Column("signed_at", sa.String(32)),
    sa.Column("key_id", sa.String(32)),
    sa.Column("signature", sa.Text),
)


@dataclass(frozen=True)
class Actor:
    """Who released: the signed-in subject (or the local user when sign-in is off)."""

    subject: str
    display_name: str = ""
    roles: tuple[str, ...] = ()


class Ledger:
    def __init__(self, url: str, *, signing_key: Ed25519PrivateKey | None = None) -> None:
        """Opens (creates, migrates) the ledger at ``url``. ``signing_key`` signs the chain head
        of a ledger migrated now and is the default key of :meth:`record`; without it the
        server key (:func:`core.release.settings.signing_key_path`) is used where it exists."""
        self._key = signing_key
        try:
            self.engine = sa.create_engine(url)
            if self.engine.dialect.name == "sqlite":
                _sqlite_begins_itself(self.engine)
            SCHEMA.create_all(self.engine)
            self.url = _safe(url)
            self._migrate()
        except (sa.exc.SQLAlchemyError, ModuleNotFoundError, ValueError) as exc:
            reason = getattr(exc, "orig", None) or exc  # the driver's words, not the SQL
            raise ConfigError(f"Cannot open the audit ledger at {_safe(url)}: {reason}") from None

    def record(self, manifest: dict, actor: Actor, key: Ed25519PrivateKey | None = None) -> int:
        """Adds one release (and its signing key, the first time) to the chain and signs the new
        head with ``key`` (default: the ledger's, else the server key); returns its ledger id.
        A database that cannot be written is a :class:`StorageError`; a manifest signed by a
        key retired by a rotation is refused."""
        leaks = data_in_manifest(manifest)
        if leaks:  # a row is kept for good: never one that may hold training data
            raise ConfigError(f"Release manifest refused by the ledger: {'; '.join(leaks)}.")
        provenance = manifest.get("provenance", {})
        signature = manifest.get("signature", {})
        row = {
            "released_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "subject": actor.subject,
            "display_name": actor.display_name,
            "roles": ",".join(actor.roles),
            "set_name": manifest["synthetic_set"],
            "synthetic_sha256": manifest["synthetic_sha256"],
            "checkpoint_sha256": provenance.get("checkpoint sha256"),
            "cohort_fingerprint": manifest.get("real_cohort_fingerprint"),
            "verdict": manifest["verdict"],
            "checks": json.dumps(manifest.get("checks", [])),
            "override_reason": manifest.get("override_reason"),
            "manifest_sha256": manifest["manifest_sha256"],
            "key_id": signature.get("key_id"),
            "manifest": json.dumps(manifest, sort_keys=True),
            "kind": RELEASE,
        }
        key = self._signing_key(key)
        new_keys = {row["key_id"]: signature.get("public_key", "")} if row["key_id"] else {}
        with self._database("Recording the release"), self._appending() as (conn, head):
            for kid in {row["key_id"], key_id(key.public_key())} - {None}:
                _refuse_retired(conn, kid)
            entry = _append(conn, head, row, new_keys, key)
            faults.point("ledger.record.before_commit")
        faults.point("ledger.record.after_commit")
        return entry

    def record_rotation(
        self, statement: dict, actor: Actor, old: Ed25519PrivateKey, new: Ed25519PrivateKey
    ) -> int:
        """Adds a key rotation (a :func:`core.release.chain.rotation_statement`) to the chain:
        both public keys kept in the key table, the old one marked retired, the head signed by
        the new key. Returns the row's id."""
        old_id, new_id = key_id(old.public_key()), key_id(new.public_key())
        row = {
            "released_at": statement["rotated_at"],
            "subject": actor.subject,
            "display_name": actor.display_name,
            "roles": ",".join(actor.roles),
            "set_name": "signing key rotation",
            "synthetic_sha256": "",
            "checkpoint_sha256": None,
            "cohort_fingerprint": None,
            "verdict": f"key {old_id} -> {new_id}",
            "checks": "[]",
            "override_reason": None,
            "manifest_sha256": statement["manifest_sha256"],
            "key_id": new_id,
            "manifest": json.dumps(statement, sort_keys=True),
            "kind": ROTATION,
        }
        keys = {k: public_pem(p.public_key()).decode() for k, p in ((old_id, old), (new_id, new))}
        with self._database("Recording the key rotation"), self._appending() as (conn, head):
            _refuse_retired(conn, old_id)
            entry = _append(conn, head, row, keys, new, retire=old_id)
        return entry

    def entries(self, limit: int = 500) -> list[dict]:
        """The newest releases first, without the manifests; ``state`` says whether a row's
        stored manifest is intact ("ok") or damaged (the rest stay viewable)."""
        query = sa.select(*[RELEASES.c[c] for c in COLUMNS], RELEASES.c.manifest)
        with self._database("Reading the ledger"), self.engine.connect() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(query.order_by(RELEASES.c.id.desc()).limit(limit))
            ]
        for row in rows:
            row["state"] = _state(row.pop("manifest"), row["manifest_sha256"])
        return rows

    def manifest(self, entry_id: int) -> dict:
        query = sa.select(RELEASES.c.manifest, RELEASES.c.manifest_sha256).where(
            RELEASES.c.id == entry_id
        )
        with self._database("Reading the ledger"), self.engine.connect() as conn:
            found = conn.execute(query).first()
        if found is None:
            raise ConfigError(f"No release {entry_id} in the ledger.")
        state = _state(found[0], found[1])
        if state != "ok":
            raise ConfigError(f"Release {entry_id} in the ledger is {state}; it cannot be shown.")
        return json.loads(found[0])

    def public_keys(self) -> dict[str, str]:
        """key id -> public key (PEM) of every key a release here was signed with."""
        with self._database("Reading the ledger's keys"), self.engine.connect() as conn:
            return dict(conn.execute(sa.select(KEYS.c.key_id, KEYS.c.public_key)).all())

    def keys(self) -> list[dict]:
        """The key table: key id, public key, first use and (after a rotation) retirement."""
        with self._database("Reading the ledger's keys"), self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(KEYS))]

    def verify(self, trusted: Iterable[Ed25519PublicKey] = ()) -> ChainReport:
        """Walks the whole chain in one consistent read: every row hash and link, every
        manifest's signature by the key id it recorded, rotations, the key table and the signed
        head (see :func:`core.release.chain.verify_chain`). ``trusted``: the public keys
        trusted from outside the ledger (this server's, or the ones a verifier was given)."""
        with self._database("Reading the ledger"), self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":  # one snapshot for every query
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                rows = [dict(r._mapping) for r in conn.execute(sa.select(RELEASES).order_by("id"))]
                keys = [dict(r._mapping) for r in conn.execute(sa.select(KEYS))]
                head = _read_head(conn)
        return verify_chain(rows, keys, head, trusted)

    # --- writing ---------------------------------------------------------------------------
    def _signing_key(self, key: Ed25519PrivateKey | None) -> Ed25519PrivateKey:
        return key or self._key or load_or_create_key(settings.signing_key_path())

    @contextmanager
    def _appending(self) -> Iterator[tuple[sa.Connection, Head]]:
        """A write transaction that holds the chain: no other writer reads the head until it
        commits (SQLite: BEGIN IMMEDIATE; PostgreSQL and others: the head row FOR UPDATE)."""
        with self.engine.connect() as conn:
            conn.execution_options(css_begin="BEGIN IMMEDIATE")
            with conn.begin():
                head = _read_head(conn, lock=True)
                if head is None:
                    raise ConfigError(
                        f"The audit ledger at {self.url} has rows but no chain head: it was "
                        "deleted. Nothing is recorded until it is looked into: run "
                        "`python -m core.report verify-ledger` and restore the ledger from a backup."
                    )
                yield conn, head

    def _migrate(self) -> None:
        """Adds the hash chain to a ledger made before it (columns, chain over the rows in id
        order, a head signed where the server key is at hand); makes the head of a new one.
        Under the write lock, so two processes opening an old ledger migrate it once."""
        with self.engine.connect() as conn:
            if not _needs_migration(conn):
                return
        with self.engine.connect() as conn:
            conn.execution_options(css_begin="BEGIN IMMEDIATE")
            with conn.begin():
                if self.engine.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"LOCK TABLE {RELEASES.name} IN SHARE ROW EXCLUSIVE MODE")
                if not _needs_migration(conn):
                    return  # another process did it meanwhile
                inspector = sa.inspect(conn)
                have = {c["name"] for c in inspector.get_columns(RELEASES.name)}
                unchained = [c for c in CHAIN_COLUMNS if c not in have]
                for name in unchained:
                    _add_column(conn, RELEASES, name)
                if "retired_at" not in {c["name"] for c in inspector.get_columns(KEYS.name)}:
                    _add_column(conn, KEYS, "retired_at")
                if conn.execute(sa.select(HEAD.c.id)).first() is not None:
                    if unchained:  # a chained ledger whose chain columns were dropped
                        raise ConfigError(
                            f"The audit ledger at {self.url}: its rows lost their hash chain "
                            "columns while its signed chain head is still there, so the chain was "
                            "removed. Restore the ledger from a backup and run "
                            "`python -m core.report verify-ledger`."
                        )
                    return
                ids = [r[0] for r in conn.execute(sa.select(RELEASES.c.id).order_by("id"))]
                if ids and not unchained:  # chained rows but the head row was deleted
                    log.warning("the audit ledger at %s lost its chain head", self.url)
                    return
                previous = GENESIS
                for entry in ids:
                    found = conn.execute(sa.select(RELEASES).where(RELEASES.c.id == entry)).one()
                    row = {**found._mapping, "kind": found.kind or RELEASE, "prev_hash": previous}
                    previous = row_hash(row)
                    values = {
                        "kind": row["kind"],
                        "prev_hash": row["prev_hash"],
                        "row_hash": previous,
                    }
                    conn.execute(RELEASES.update().where(RELEASES.c.id == entry).values(**values))
                keys = [dict(r._mapping) for r in conn.execute(sa.select(KEYS))]
                head = Head(len(ids), ids[-1] if ids else None, previous, keys_digest(keys))
                key = self._key
                if key is None and ids and settings.signing_key_path().is_file():
                    key = load_or_create_key(settings.signing_key_path())
                if key is not None and ids:
                    head = head.signed(key)
                conn.execute(HEAD.insert().values(id=1, **_head_values(head)))
                if ids:
                    log.info(
                        "audit ledger at %s: added the hash chain to its %d existing rows (in id "
                        "order; rows deleted before today cannot be detected); the head is %s",
                        self.url,
                        len(ids),
                        f"signed with key {head.key_id}"
                        if head.signature
                        else "unsigned until the next release (no signing key here)",
                    )

    @contextmanager
    def _database(self, what: str) -> Iterator[None]:
        """Database failures as a :class:`StorageError` naming the ledger and what to do, never
        the SQL (which holds the manifest)."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or type(exc).__name__)
            lower = reason.lower()
            if "full" in lower:
                advice = "the disk is full: free some space and try again"
            elif "readonly" in lower or "read-only" in lower:
                advice = "the database is read-only: make it writable or set CSS_LEDGER_URL"
            elif "locked" in lower:
                advice = "another process holds the database: try again in a moment"
            else:
                advice = "check that the database is reachable and writable (CSS_LEDGER_URL)"
            raise StorageError(
                f"{what} failed at {self.url}: {advice} (database said: {reason[:200]})."
            ) from None


def _sqlite_begins_itself(engine: sa.Engine) -> None:
    """SQLAlchemy, not the sqlite3 module, starts SQLite transactions (the recipe in
    SQLAlchemy's SQLite notes), so a writer can take the write lock before it reads the head
    (BEGIN IMMEDIATE) and a reader's queries share one snapshot (BEGIN)."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("css_begin", "BEGIN"))


def _needs_migration(conn: sa.Connection) -> bool:
    inspector = sa.inspect(conn)
    have = {c["name"] for c in inspector.get_columns(RELEASES.name)}
    keys = {c["name"] for c in inspector.get_columns(KEYS.name)}
    if not set(CHAIN_COLUMNS) <= have or "retired_at" not in keys:
        return True
    return conn.execute(sa.select(HEAD.c.id)).first() is None


def _read_head(conn: sa.Connection, *, lock: bool = False) -> Head | None:
    query = sa.select(HEAD).where(HEAD.c.id == 1)
    found = conn.execute(query.with_for_update() if lock else query).first()
    if found is None:
        return None
    values = {k: v for k, v in found._mapping.items() if k != "id"}
    return Head(**values)


def _head_values(head: Head) -> dict:
    return dict(head.__dict__)


def _refuse_retired(conn: sa.Connection, kid: str) -> None:
    retired = conn.execute(sa.select(KEYS.c.retired_at).where(KEYS.c.key_id == kid)).scalar()
    if retired:
        raise ConfigError(
            f"The signing key {kid} was retired by a key rotation at {retired}; nothing more is "
            "signed with it. Restart the app so it reads the new key (or, if the rotation was "
            "interrupted, run `python -m core.release rotate-key` again to finish it)."
        )


def _append(
    conn: sa.Connection,
    head: Head,
    row: dict,
    new_keys: dict[str, str],
    key: Ed25519PrivateKey,
    retire: str | None = None,
) -> int:
    """Inserts ``row`` after the head (never after whatever row is last: a row deleted from the
    end must stay missing), records new keys, signs the new head; inside the caller's lock."""
    last = conn.execute(
        sa.select(RELEASES.c.row_hash).order_by(RELEASES.c.id.desc()).limit(1)
    ).scalar()
    if (last or GENESIS) != head.last_hash:
        log.warning(
            "the audit ledger's last row does not match its signed head; chaining onto the head "
            "(run `python -m core.report verify-ledger`)"
        )
    entry = int(
        conn.execute(
            RELEASES.insert().values(**row, prev_hash=head.last_hash)
        ).inserted_primary_key[0]
    )
    stored = conn.execute(sa.select(RELEASES).where(RELEASES.c.id == entry)).one()
    digest = row_hash(dict(stored._mapping))  # what the database holds, as read back
    conn.execute(RELEASES.update().where(RELEASES.c.id == entry).values(row_hash=digest))
    for kid, pem in new_keys.items():
        if conn.execute(sa.select(KEYS.c.key_id).where(KEYS.c.key_id == kid)).first() is None:
            conn.execute(
                KEYS.insert().values(key_id=kid, public_key=pem, first_used=row["released_at"])
            )
    if retire:
        conn.execute(
            KEYS.update().where(KEYS.c.key_id == retire).values(retired_at=row["released_at"])
        )
    keys = [dict(r._mapping) for r in conn.execute(sa.select(KEYS))]
    signed = Head(head.row_count + 1, entry, digest, keys_digest(keys)).signed(key)
    conn.execute(HEAD.update().where(HEAD.c.id == 1).values(**_head_values(signed)))
    return entry


def _add_column(conn: sa.Connection, table: sa.Table, name: str) -> None:
    column = table.c[name]
    kind = column.type.compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")


def _state(raw: str | None, sha256: str | None) -> str:
    """ "ok", or why a stored manifest is damaged."""
    try:
        manifest = json.loads(raw or "")
    except (json.JSONDecodeError, RecursionError, TypeError):
        return "damaged: the stored manifest is not JSON"
    if not isinstance(manifest, dict):
        return "damaged: the stored manifest is not an object"
    if manifest.get("manifest_sha256") != sha256:
        return "damaged: the stored manifest does not match its row"
    return "ok"


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"
