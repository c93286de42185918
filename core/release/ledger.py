"""The audit ledger: every release recorded in a database, who released what, when, judged how.

SQLite by default (one file, see :mod:`core.release.settings`), PostgreSQL (or any database
SQLAlchemy speaks) by URL for a shared deployment. A row holds the signed-in subject, the time,
the set's sha256, the model checkpoint's sha256, the real cohort's fingerprint, the gate's
verdict and checks, the override reason and the whole signed manifest. Rows are only added.
Every public key a release was signed with is kept too (``public_keys``), for verifying later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from core import faults
from core.checkpoints import data_in_manifest
from core.errors import ConfigError, StorageError

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
)
COLUMNS = [c.name for c in RELEASES.columns if c.name not in ("manifest", "checks")]
# every public key a release was signed with, so releases signed before a key change still
# verify against a key this server vouched for
KEYS = sa.Table(
    "css_signing_keys",
    SCHEMA,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("public_key", sa.Text, nullable=False),  # PEM
    sa.Column("first_used", sa.String(32), nullable=False),
)


@dataclass(frozen=True)
class Actor:
    """Who released: the signed-in subject (or the local user when sign-in is off)."""

    subject: str
    display_name: str = ""
    roles: tuple[str, ...] = ()


class Ledger:
    def __init__(self, url: str) -> None:
        try:
            self.engine = sa.create_engine(url)
            SCHEMA.create_all(self.engine)
        except (sa.exc.SQLAlchemyError, ModuleNotFoundError, ValueError) as exc:
            reason = getattr(exc, "orig", None) or exc  # the driver's words, not the SQL
            raise ConfigError(f"Cannot open the audit ledger at {_safe(url)}: {reason}") from None
        self.url = _safe(url)

    def record(self, manifest: dict, actor: Actor) -> int:
        """Adds one release (and its signing key, the first time); returns its ledger id. A
        database that cannot be written is a :class:`StorageError`."""
        leaks = data_in_manifest(manifest)
        if leaks:  # a row is kept for good: never one that may hold training data
            raise ConfigError(f"Release manifest refused by the ledger: {'; '.join(leaks)}.")
        provenance = manifest.get("provenance", {})
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
            "key_id": manifest.get("signature", {}).get("key_id"),
            "manifest": json.dumps(manifest, sort_keys=True),
        }
        signature = manifest.get("signature", {})
        with self._database("Recording the release"), self.engine.begin() as conn:
            entry = int(conn.execute(RELEASES.insert().values(**row)).inserted_primary_key[0])
            known = sa.select(KEYS.c.key_id).where(KEYS.c.key_id == row["key_id"])
            if row["key_id"] and conn.execute(known).first() is None:
                conn.execute(
                    KEYS.insert().values(
                        key_id=row["key_id"],
                        public_key=signature.get("public_key", ""),
                        first_used=row["released_at"],
                    )
                )
            faults.point("ledger.record.before_commit")
        faults.point("ledger.record.after_commit")
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
