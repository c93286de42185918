"""Where releases are recorded and signed: environment variables, with defaults for one user.

- ``CSS_STATE_DIR``: folder for the default ledger and key (default ``~/.clinical-synthesis-studio``);
- ``CSS_LEDGER_URL``: SQLAlchemy URL of the audit ledger (default: a SQLite file in the state
  folder; ``postgresql+psycopg://user:pass@host/db`` for a shared deployment);
- ``CSS_LEDGER_URL_FILE``: a file holding that URL, read when ``CSS_LEDGER_URL`` is unset (a
  mounted container secret: the database password stays out of the environment);
- ``CSS_SIGNING_KEY``: the Ed25519 private key's path (default ``signing-key.pem`` there);
- ``CSS_PUBLIC_KEY_URL``: where recipients get the public key to verify releases against (a URL
  or path; default the ``.pub.pem`` beside the private key), named in every release manifest.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import ConfigError


def state_dir() -> Path:
    return Path(os.environ.get("CSS_STATE_DIR", Path.home() / ".clinical-synthesis-studio"))


def ledger_url() -> str:
    if url := os.environ.get("CSS_LEDGER_URL"):
        return url
    if path := os.environ.get("CSS_LEDGER_URL_FILE"):
        return _url_from_file(Path(path))
    return f"sqlite:///{state_dir() / 'ledger.sqlite3'}"


def ledger_url_configured() -> bool:
    """Whether the deployment names its ledger (else it is this user's SQLite file)."""
    return bool(os.environ.get("CSS_LEDGER_URL") or os.environ.get("CSS_LEDGER_URL_FILE"))


def _url_from_file(path: Path) -> str:
    """The URL in ``path`` (its first non-blank line); its content never goes into a message."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ConfigError(
            f"CSS_LEDGER_URL_FILE names {path}, which cannot be read ({reason}); expected a "
            "file holding the audit ledger's URL, e.g. postgresql+psycopg://user:password@host/db"
        ) from None
    url = next((line.strip() for line in lines if line.strip()), "")
    if "://" not in url:
        raise ConfigError(
            f"CSS_LEDGER_URL_FILE names {path}, which holds no database URL; expected one line "
            "like postgresql+psycopg://user:password@host/db"
        )
    return url


def signing_key_path() -> Path:
    return Path(os.environ.get("CSS_SIGNING_KEY") or state_dir() / "signing-key.pem")


def public_key_location() -> str:
    return os.environ.get("CSS_PUBLIC_KEY_URL") or str(signing_key_path().with_suffix(".pub.pem"))
