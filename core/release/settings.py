"""Where releases are recorded and signed: environment variables, with defaults for one user.

- ``CSS_STATE_DIR``: folder for the default ledger and key (default ``~/.clinical-synthesis-studio``);
- ``CSS_LEDGER_URL``: SQLAlchemy URL of the audit ledger (default: a SQLite file in the state
  folder; ``postgresql+psycopg://user:pass@host/db`` for a shared deployment);
- ``CSS_SIGNING_KEY``: the Ed25519 private key's path (default ``signing-key.pem`` there);
- ``CSS_PUBLIC_KEY_URL``: where recipients get the public key to verify releases against (a URL
  or path; default the ``.pub.pem`` beside the private key), named in every release manifest.
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    return Path(os.environ.get("CSS_STATE_DIR", Path.home() / ".clinical-synthesis-studio"))


def ledger_url() -> str:
    return os.environ.get("CSS_LEDGER_URL") or f"sqlite:///{state_dir() / 'ledger.sqlite3'}"


def signing_key_path() -> Path:
    return Path(os.environ.get("CSS_SIGNING_KEY") or state_dir() / "signing-key.pem")


def public_key_location() -> str:
    return os.environ.get("CSS_PUBLIC_KEY_URL") or str(signing_key_path().with_suffix(".pub.pem"))
