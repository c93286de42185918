"""The audit ledger: every release recorded in a database, who released what, when, judged how.

SQLite by default (one file, see :mod:`core.release.settings`), PostgreSQL (or any database
SQLAlchemy speaks) by URL for a shared deployment. A row holds the signed-in subject, the time,
the set's sha256, the model checkpoint's sha256, the real cohort's fingerprint, the gate's
verdict and checks, the override reason and the whole signed manifest. Rows are only added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from core.checkpoints import data_in_manifest
from core.errors import ConfigError

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
            raise ConfigError(f"Cannot open the audit ledger at {_safe(url)}: {exc}") from exc
        self.url = _safe(url)

    def record(self, manifest: dict, actor: Actor) -> int:
        """Adds one release; returns its ledger id."""
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
        with self.engine.begin() as conn:
            return int(conn.execute(RELEASES.insert().values(**row)).inserted_primary_key[0])

    def entries(self, limit: int = 500) -> list[dict]:
        """The newest releases first, without the manifests."""
        query = sa.select(*[RELEASES.c[c] for c in COLUMNS]).order_by(RELEASES.c.id.desc())
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.limit(limit))]

    def manifest(self, entry_id: int) -> dict:
        query = sa.select(RELEASES.c.manifest).where(RELEASES.c.id == entry_id)
        with self.engine.connect() as conn:
            raw = conn.execute(query).scalar_one_or_none()
        if raw is None:
            raise ConfigError(f"No release {entry_id} in the ledger.")
        return json.loads(raw)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"
