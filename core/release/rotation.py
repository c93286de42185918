"""Key rotation: a new server signing key, with the old one's hand-over recorded in the ledger.

The new private key is written beside the old one first (``<key>.next``, fsynced); then the
ledger records a rotation row signed by both keys (the old public key stays in its key table,
marked retired); then the old public half is kept as ``<key stem>.<old key id>.pub.pem`` and the
new key renamed into place. A rotation killed after the ledger row is finished by running it
again; one killed before it leaves the old key in use and the half-made new key is discarded.
Releases signed before still verify with the key id they recorded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from filelock import FileLock

from core import faults
from core.errors import ConfigError, storage_error
from core.release.chain import rotation_statement
from core.release.ledger import Actor, Ledger
from core.release.signing import (
    key_id,
    public_path,
    public_pem,
    read_key,
    sweep_killed_writes,
    write_atomically,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rotation:
    old_key_id: str
    new_key_id: str
    ledger_row: int | None  # None when an interrupted rotation was finished
    retired_public_key: Path


def pending_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".next")


def retired_public_path(path: Path, kid: str) -> Path:
    return Path(path).with_name(f"{Path(path).stem}.{kid}.pub.pem")


def rotate_key(path: Path, ledger: Ledger, actor: Actor) -> Rotation:
    """Replaces the signing key at ``path`` by a new one, recorded in ``ledger`` (see the
    module's notes); under the key's lock, so it never races the key's creation."""
    path = Path(path)
    pending = pending_path(path)
    try:
        with FileLock(path.parent / f"{path.name}.lock", is_singleton=True):
            if not path.is_file():
                raise ConfigError(
                    f"No signing key at {path} to rotate: the first release makes one (or set "
                    "CSS_SIGNING_KEY to the key in use)."
                )
            sweep_killed_writes(path)
            old = read_key(path)
            new, entry = _finishable(pending, old, ledger), None
            if new is None:
                new = Ed25519PrivateKey.generate()
                write_atomically(pending, _private_pem(new), 0o600)
                faults.point("rotate.after_pending")
                entry = ledger.record_rotation(rotation_statement(old, new), actor, old, new)
                faults.point("rotate.after_ledger")
            retired = retired_public_path(path, key_id(old.public_key()))
            write_atomically(retired, public_pem(old.public_key()), 0o644)
            os.replace(pending, path)
            write_atomically(public_path(path), public_pem(new.public_key()), 0o644)
    except OSError as exc:
        raise storage_error(exc, path, "Rotating the release signing key") from None
    rotation = Rotation(key_id(old.public_key()), key_id(new.public_key()), entry, retired)
    log.info(
        "rotated the release signing key %s: %s -> %s (ledger row %s; old public key kept at %s)",
        path,
        rotation.old_key_id,
        rotation.new_key_id,
        entry if entry is not None else "recorded before",
        retired,
    )
    return rotation


def _finishable(pending: Path, old: Ed25519PrivateKey, ledger: Ledger) -> Ed25519PrivateKey | None:
    """The new key of an interrupted rotation the ledger already recorded (old key retired, new
    key in the table); a half-made new key the ledger never saw is discarded."""
    if not pending.is_file():
        return None
    new = read_key(pending)
    keys = {k["key_id"]: k for k in ledger.keys()}
    old_entry = keys.get(key_id(old.public_key()))
    if key_id(new.public_key()) in keys and old_entry and old_entry.get("retired_at"):
        log.info("finishing the key rotation interrupted after its ledger row")
        return new
    pending.unlink()
    return None


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
