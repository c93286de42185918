"""Ed25519 signatures on release manifests, and checking a manifest (and its set) later.

The server key is made on first use at ``CSS_SIGNING_KEY`` (default: ``signing-key.pem`` in the
state folder, see :mod:`core.release.settings`), readable by its owner only; the public half is
written beside it (``.pub.pem``) for whoever has to verify releases. A manifest carries its
signature, the public key and that key's id, and names where the trusted public key is published;
``verify_manifest`` checks the body's hash, that a trusted key signed it (a manifest signed by a
key nobody vouched for does not verify) and, given the released file, its hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from filelock import FileLock

from core import atomic, faults
from core.errors import ConfigError, storage_error
from core.release import settings

log = logging.getLogger(__name__)

SIGNED_FIELDS = ("signature",)
# added when signing, after manifest_sha256 was computed: covered by the signature only
UNHASHED_FIELDS = ("manifest_sha256", "trusted_key")


def canonical(body: dict) -> bytes:
    """The bytes that are hashed and signed: sorted keys, no whitespace."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def manifest_json(manifest: dict) -> bytes:
    """A signed manifest as the file users download (indented; verification re-canonicalises)."""
    return json.dumps(manifest, indent=2).encode("utf-8")


def public_path(path: Path) -> Path:
    """Where the public half of the key at ``path`` is written."""
    return Path(path).with_suffix(".pub.pem")


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The server's signing key; generated (and its public half written) on first use.

    Both halves are written to a temporary file, fsynced and renamed into place under a lock,
    so a kill never leaves an empty or half-written key, and a session making its first release
    at the same time as another waits for that key instead of reading it half-written. A
    missing public half is derived again from the private key."""
    path = Path(path)
    if path.is_file():
        key = read_key(path)
        if _public_is(path, key) and not killed_writes(path):
            return key
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.parent / f"{path.name}.lock", is_singleton=True):
            sweep_killed_writes(path)
            if path.is_file():
                key = read_key(path)
            else:
                key = Ed25519PrivateKey.generate()
                pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                write_atomically(path, pem, 0o600)
                log.info(
                    "created the release signing key %s (key %s)", path, key_id(key.public_key())
                )
                faults.point("key.after_private")
            if not _public_is(path, key):
                write_atomically(
                    public_path(path),
                    public_pem(key.public_key()),
                    0o644,
                    "key.public_before_rename",
                )
                log.info("wrote the public half of the signing key to %s", public_path(path))
    except OSError as exc:
        raise storage_error(exc, path, "Writing the release signing key") from None
    return key


def read_key(path: Path) -> Ed25519PrivateKey:
    what_to_do = (
        "Restore it from your backup; or, to start a new key, move it aside: releases "
        "already signed with it then verify only with its public half."
    )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise storage_error(exc, path, "Reading the release signing key") from None
    if not data.strip():
        raise ConfigError(f"The release signing key {path} is empty (damaged). {what_to_do}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"The release signing key {path} is not a PEM private key ({exc}). {what_to_do}"
        ) from None
    except UnsupportedAlgorithm:
        raise ConfigError(
            f"The release signing key {path} is of an unknown kind. {what_to_do}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"The release signing key {path} holds a {type(key).__name__}, not an Ed25519 key. "
            f"{what_to_do}"
        )
    return key


def _public_is(path: Path, key: Ed25519PrivateKey) -> bool:
    """Whether the public half beside ``path`` is there and is ``key``'s."""
    try:
        return public_path(path).read_bytes() == public_pem(key.public_key())
    except OSError:
        return False


def sweep_killed_writes(path: Path) -> None:
    """Removes the temporary files a killed write of the key at ``path`` left (either half);
    call under the key's lock, where no write of them is in flight."""
    for stale in killed_writes(path):
        stale.unlink(missing_ok=True)


def killed_writes(path: Path) -> list[Path]:
    """Temporary files of writes of the key at ``path``: either half, a rotation's pending key
    or a retired public half (all named ``.<stem>.*.tmp-*``)."""
    return list(path.parent.glob(f".{path.stem}.*.tmp-*"))


def write_atomically(path: Path, data: bytes, mode: int, point: str = "key.before_rename") -> None:
    """A key file written whole or not at all (core.atomic), ``point`` its crash-test moment."""
    atomic.write_atomically(path, data, mode, point)


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key.")
    return key


def sign_manifest(manifest: dict, key: Ed25519PrivateKey, published_at: str | None = None) -> dict:
    """The manifest with a ``signature`` block over every other field, and a ``trusted_key``
    field naming the key and where its public half is published (``published_at``, default
    :func:`core.release.settings.public_key_location`), so a recipient knows which key to get
    from whom rather than trusting the one the manifest carries."""
    body = {k: v for k, v in manifest.items() if k not in SIGNED_FIELDS}
    public = key.public_key()
    body["trusted_key"] = {
        "key_id": key_id(public),
        "published_at": published_at or settings.public_key_location(),
    }
    return {
        **body,
        "signature": {
            "algorithm": "Ed25519",
            "key_id": key_id(public),
            "public_key": public_pem(public).decode(),
            "value": base64.b64encode(key.sign(canonical(body))).decode(),
        },
    }


@dataclass(frozen=True)
class Verification:
    ok: bool
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # what, passed, detail
    signer_unknown: bool = False  # no trusted key was given: nothing says who signed


Trusted = Ed25519PublicKey | Iterable[Ed25519PublicKey] | None


def verify_manifest(
    manifest: dict,
    released: bytes | None = None,
    trusted: Trusted = None,
    *,
    trust_embedded: bool = False,
) -> Verification:
    """Checks the manifest's hash, its signature by a **trusted** key (one of ``trusted``) and,
    given the released file, its sha256. Without a trusted key the signer is unknown and the
    manifest does not verify, unless ``trust_embedded`` accepts the key the manifest carries
    (which anyone who forges a manifest can put there)."""
    if isinstance(trusted, Ed25519PublicKey):
        trusted = [trusted]
    anchors = {key_id(k): k for k in trusted or ()}
    checks: list[tuple[str, bool, str]] = []
    sig = manifest.get("signature")
    body = {k: v for k, v in manifest.items() if k not in SIGNED_FIELDS}
    inner = {k: v for k, v in body.items() if k not in UNHASHED_FIELDS}
    digest = hashlib.sha256(canonical(inner)).hexdigest()
    same = digest == body.get("manifest_sha256")
    checks.append(
        (
            "manifest hash",
            same,
            "the fields match manifest_sha256"
            if same
            else "the fields were changed after the manifest was made",
        )
    )
    signer_unknown = False
    if not isinstance(sig, dict) or sig.get("algorithm") != "Ed25519":
        checks.append(("signature", False, "no Ed25519 signature"))
        return Verification(False, checks)
    claimed = str(sig.get("key_id"))[:40]
    try:
        embedded = serialization.load_pem_public_key(str(sig["public_key"]).encode())
        if not isinstance(embedded, Ed25519PublicKey):
            raise TypeError("not an Ed25519 key")
    except (ValueError, KeyError, TypeError, UnsupportedAlgorithm):
        embedded = None
    if anchors:
        signer = anchors.get(key_id(embedded)) if embedded is not None else None
        checks.append(
            (
                "signing key",
                signer is not None,
                f"the trusted key {key_id(signer)}"
                if signer is not None
                else f"signed by key {claimed}, not a trusted one ({', '.join(anchors)})",
            )
        )
    elif trust_embedded:
        signer = embedded
        checks.append(
            (
                "signing key",
                True,
                f"the key the manifest carries ({claimed}), trusted on request: nothing shows "
                "who holds it",
            )
        )
    else:
        signer, signer_unknown = embedded, True
        where = body.get("trusted_key", {})
        where = where.get("published_at") if isinstance(where, dict) else None
        checks.append(
            (
                "signing key",
                False,
                f"unknown signer: no trusted public key was given (the manifest names key "
                f"{claimed}" + (f", published at {str(where)[:200]}" if where else "") + ")",
            )
        )
    try:
        if signer is None:
            raise InvalidSignature
        signer.verify(base64.b64decode(str(sig["value"])), canonical(body))
        checks.append(("signature", True, f"valid, key {claimed}"))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        checks.append(("signature", False, "does not match the manifest"))
    if released is not None:
        sha = hashlib.sha256(released).hexdigest()
        same = sha == body.get("synthetic_sha256")
        checks.append(
            (
                "released file",
                same,
                "its sha256 matches" if same else f"its sha256 {sha[:16]}... does not match",
            )
        )
    return Verification(all(ok for _, ok, _ in checks), checks, signer_unknown)
