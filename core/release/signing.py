"""Ed25519 signatures on release manifests, and checking a manifest (and its set) later.

The server key is made on first use at ``CSS_SIGNING_KEY`` (default: ``signing-key.pem`` in the
state folder, see :mod:`core.release.settings`), readable by its owner only; the public half is
written beside it (``.pub.pem``) for whoever has to verify releases. A manifest carries its
signature, the public key and that key's id; ``verify_manifest`` checks the body's hash, the
signature, that the key is the one trusted (when given) and, given the released file, its hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.errors import ConfigError

SIGNED_FIELDS = ("signature",)


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


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The server's signing key; generated (and its public half written) on first start."""
    path = Path(path)
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as exc:
            raise ConfigError(f"{path} is not a PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 key.")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another session made it first
        return load_or_create_key(path)
    except OSError as exc:
        raise ConfigError(f"Cannot create the release signing key at {path}: {exc}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    path.with_suffix(".pub.pem").write_bytes(public_pem(key.public_key()))
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key.")
    return key


def sign_manifest(manifest: dict, key: Ed25519PrivateKey) -> dict:
    """The manifest with a ``signature`` block over every other field."""
    body = {k: v for k, v in manifest.items() if k not in SIGNED_FIELDS}
    public = key.public_key()
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


def verify_manifest(
    manifest: dict, released: bytes | None = None, trusted: Ed25519PublicKey | None = None
) -> Verification:
    checks: list[tuple[str, bool, str]] = []
    sig = manifest.get("signature")
    body = {k: v for k, v in manifest.items() if k not in SIGNED_FIELDS}
    inner = {k: v for k, v in body.items() if k != "manifest_sha256"}
    digest = hashlib.sha256(canonical(inner)).hexdigest()
    checks.append(
        (
            "manifest hash",
            digest == body.get("manifest_sha256"),
            "the fields match manifest_sha256"
            if digest == body.get("manifest_sha256")
            else "the fields were changed after the manifest was made",
        )
    )
    if not isinstance(sig, dict) or sig.get("algorithm") != "Ed25519":
        checks.append(("signature", False, "no Ed25519 signature"))
        return Verification(False, checks)
    try:
        public = serialization.load_pem_public_key(sig["public_key"].encode())
        assert isinstance(public, Ed25519PublicKey)
        public.verify(base64.b64decode(sig["value"]), canonical(body))
        checks.append(("signature", True, f"valid, key {sig.get('key_id')}"))
    except (InvalidSignature, ValueError, KeyError, AssertionError, TypeError):
        checks.append(("signature", False, "does not match the manifest"))
        public = None
    if trusted is not None:
        same = public is not None and key_id(public) == key_id(trusted)
        checks.append(
            (
                "signing key",
                same,
                f"the trusted key {key_id(trusted)}"
                if same
                else f"signed by key {sig.get('key_id')}, not the trusted {key_id(trusted)}",
            )
        )
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
    return Verification(all(ok for _, ok, _ in checks), checks)
