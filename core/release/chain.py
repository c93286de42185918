"""The audit ledger's hash chain, its signed head and key rotation statements (pure functions).

Each ledger row stores ``prev_hash`` (the previous row's hash; :data:`GENESIS` for the first)
and ``row_hash``, the sha256 of its own canonical content (every column but ``row_hash``,
``id`` and ``prev_hash`` included). The **head** (row count, last row id and hash, a digest of
the key table) is signed with the server key after every write. So an edited row no longer
matches its hash, a deleted or reordered row breaks a link, a deleted last row (or rows added
by hand) no longer matches the signed count and hash, and an edited key table no longer matches
the signed digest. :func:`verify_chain` walks all of it and names every finding.

A key rotation is a row too: a statement naming the old and the new public key, signed by both,
so trust in either key extends to the other. :mod:`core.release.ledger` reads and writes the
database; this module only computes and checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.release.signing import canonical, key_id, public_pem, verify_manifest

GENESIS = "0" * 64
RELEASE, ROTATION = "release", "key-rotation"
# the columns a row hash covers: every column of css_releases but row_hash (a test keeps the two
# in step, so a new column cannot be left out of the hash)
ROW_FIELDS = (
    "id",
    "released_at",
    "subject",
    "display_name",
    "roles",
    "set_name",
    "synthetic_sha256",
    "checkpoint_sha256",
    "cohort_fingerprint",
    "verdict",
    "checks",
    "override_reason",
    "manifest_sha256",
    "key_id",
    "manifest",
    "kind",
    "prev_hash",
)
KEY_FIELDS = ("key_id", "public_key", "first_used", "retired_at")
# domain prefixes: a signature made for one purpose can never be replayed as another
_ROW = b"css-ledger-row/1\n"
_HEAD = b"css-ledger-head/1\n"
_ROTATION = b"css-key-rotation/1\n"
TAMPERED, UNKNOWN_KEY = "tampered", "unknown key"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def row_hash(row: Mapping) -> str:
    """sha256 of the row's content as stored (``row_hash`` itself excluded)."""
    return hashlib.sha256(_ROW + canonical({k: row.get(k) for k in ROW_FIELDS})).hexdigest()


def keys_digest(keys: Iterable[Mapping]) -> str:
    """sha256 of the whole key table, in key id order."""
    table = sorted([[k.get(f) for f in KEY_FIELDS] for k in keys], key=lambda r: str(r[0]))
    return hashlib.sha256(canonical({"keys": table})).hexdigest()


@dataclass(frozen=True)
class Head:
    """The chain head: how many rows, which is last, and the key table, signed."""

    row_count: int
    last_id: int | None
    last_hash: str
    keys_sha256: str
    signed_at: str | None = None
    key_id: str | None = None
    signature: str | None = None

    def payload(self) -> bytes:
        fields = ("row_count", "last_id", "last_hash", "keys_sha256", "signed_at")
        return _HEAD + canonical({f: getattr(self, f) for f in fields})

    def signed(self, key: Ed25519PrivateKey) -> Head:
        unsigned = Head(self.row_count, self.last_id, self.last_hash, self.keys_sha256, now())
        return replace(
            unsigned,
            key_id=key_id(key.public_key()),
            signature=base64.b64encode(key.sign(unsigned.payload())).decode(),
        )

    def verifies_with(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(base64.b64decode(str(self.signature)), self.payload())
            return True
        except (InvalidSignature, ValueError, TypeError):
            return False


def rotation_statement(old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> dict:
    """The record of a key change, signed by the old key (it hands over) and the new one (it
    accepts): either key, once trusted, vouches for the other."""
    body: dict = {"kind": "key_rotation", "rotated_at": now()}
    for name, key in (("old_key", old), ("new_key", new)):
        public = key.public_key()
        body[name] = {"key_id": key_id(public), "public_key": public_pem(public).decode()}
    body["manifest_sha256"] = hashlib.sha256(canonical(body)).hexdigest()
    message = _ROTATION + canonical(body)
    return {
        **body,
        "signatures": [
            {"key_id": key_id(k.public_key()), "value": base64.b64encode(k.sign(message)).decode()}
            for k in (old, new)
        ],
    }


def check_rotation(statement: object) -> tuple[list[str], dict[str, Ed25519PublicKey]]:
    """Problems with a rotation statement (none when its hash holds and both keys signed it),
    and its keys by role ("old_key", "new_key")."""
    if not isinstance(statement, dict) or statement.get("kind") != "key_rotation":
        return ["it is not a key rotation statement"], {}
    body = {k: v for k, v in statement.items() if k != "signatures"}
    inner = {k: v for k, v in body.items() if k != "manifest_sha256"}
    problems = []
    if hashlib.sha256(canonical(inner)).hexdigest() != body.get("manifest_sha256"):
        problems.append("its fields do not match its hash")
    keys: dict[str, Ed25519PublicKey] = {}
    for name in ("old_key", "new_key"):
        entry = body.get(name)
        public = _public(entry.get("public_key") if isinstance(entry, dict) else None)
        if public is None or key_id(public) != entry.get("key_id"):
            problems.append(f"its {name.replace('_', ' ')} is not the key it names")
        else:
            keys[name] = public
    signatures = statement.get("signatures")
    values = {s.get("key_id"): s.get("value") for s in signatures or [] if isinstance(s, dict)}
    for name, public in keys.items():
        try:
            raw = base64.b64decode(str(values.get(key_id(public))))
            public.verify(raw, _ROTATION + canonical(body))
        except (InvalidSignature, ValueError, TypeError):
            problems.append(f"the {name.replace('_', ' ')} did not sign it")
    return problems, keys


@dataclass(frozen=True)
class Finding:
    kind: str  # TAMPERED or UNKNOWN_KEY
    where: str  # "row 3", "head", "key table", "keys"
    message: str


@dataclass(frozen=True)
class ChainReport:
    rows: int
    last_hash: str
    findings: list[Finding] = field(default_factory=list)
    trusted: tuple[str, ...] = ()  # the key ids that checked out as vouched for

    @property
    def tampered(self) -> bool:
        return any(f.kind == TAMPERED for f in self.findings)

    @property
    def ok(self) -> bool:
        return not self.findings


def verify_chain(
    rows: Sequence[Mapping],
    keys: Sequence[Mapping],
    head: Head | None,
    anchors: Iterable[Ed25519PublicKey],
) -> ChainReport:
    """Every finding about a ledger: ``rows`` in id order, the key table, the stored head, and
    the public keys trusted from outside the ledger (``anchors``: the server's key, keys a
    verifier was given). A key is trusted when it is an anchor, when a rotation signed by both
    links it to a trusted key, or when it is in a key table that a head signed by a trusted
    key vouches for. Without any anchor the ledger's own keys are used (tampering is still
    found) and one UNKNOWN_KEY finding says nothing shows who signed."""
    findings: list[Finding] = []

    def bad(where: str, message: str) -> None:
        findings.append(Finding(TAMPERED, where, message))

    table: dict[str, Ed25519PublicKey] = {}
    for k in keys:
        public = _public(k.get("public_key"))
        if public is None:
            bad("key table", f"key {k.get('key_id')}'s public key is not an Ed25519 key (edited)")
        elif key_id(public) != k.get("key_id"):
            bad(
                "key table",
                f"the public key stored for key {k.get('key_id')} is key {key_id(public)}: "
                "the key table was edited",
            )
        else:
            table[str(k["key_id"])] = public

    # the links: each row names the one before it
    previous, before = GENESIS, "the start of the ledger"
    for row in rows:
        where, stored = f"row {row.get('id')}", row.get("row_hash")
        if not stored:
            bad(where, "has no row hash: it was written outside the app after the chain began")
        elif row_hash(row) != stored:
            bad(
                where,
                "its content does not match its row hash: the row was edited (its subject, "
                "time, set, verdict, manifest or another field) or moved to another id",
            )
        if row.get("prev_hash") != previous:
            bad(
                where,
                f"does not follow {before}: its previous-row hash is not that row's hash, so a "
                "row between them was deleted, or rows were reordered or inserted",
            )
        previous, before = stored or row_hash(row), where

    anchors = {key_id(k): k for k in anchors}
    trusted: dict[str, Ed25519PublicKey] = dict(anchors)
    if not anchors:
        findings.append(
            Finding(
                UNKNOWN_KEY,
                "keys",
                "no trusted public key was given: signatures were checked against the ledger's "
                "own key table, which whoever can write the ledger can rewrite too; pass the "
                "server's public key (--public-key)",
            )
        )
        trusted = dict(table)
    # rotations, in both directions, until nothing changes
    links = []
    for row in rows:
        if row.get("kind") == ROTATION:
            problems, pair = check_rotation(_json(row.get("manifest")))
            if problems:
                bad(f"row {row.get('id')}", f"key rotation: {'; '.join(problems)}")
            elif len(pair) == 2:
                links.append(pair)
    grown = True
    while grown:
        grown = False
        for pair in links:
            ids = {name: key_id(k) for name, k in pair.items()}
            for have, get in (("old_key", "new_key"), ("new_key", "old_key")):
                if ids[have] in trusted and ids[get] not in trusted:
                    trusted[ids[get]] = pair[get]
                    grown = True

    last_id = rows[-1].get("id") if rows else None
    digest = keys_digest(keys)
    if head is None or not head.signature:
        if rows or keys:
            bad(
                "head",
                "the chain head is missing or unsigned: it was deleted or edited (a ledger "
                "migrated where the signing key was absent is signed at its next release)",
            )
    else:
        if head.row_count != len(rows):
            what = (
                "rows were deleted (the last ones, or others)"
                if head.row_count > len(rows)
                else "rows were added without the server's key"
            )
            bad(
                "head",
                f"the signed head counts {head.row_count} rows, the ledger has {len(rows)}: {what}",
            )
        if head.last_hash != previous or head.last_id != last_id:
            bad(
                "head",
                f"the signed head ends at row {head.last_id} (hash {head.last_hash[:16]}...), the "
                f"ledger at row {last_id} (hash {previous[:16]}...): the last row was deleted or "
                "replaced, or a row was edited and the chain computed again",
            )
        if head.keys_sha256 != digest:
            bad(
                "key table",
                "it differs from the key table the signed head covers: a key was added, removed "
                "or edited",
            )
        signer = trusted.get(str(head.key_id))
        if signer is None:
            bad("head", f"signed by key {head.key_id}, which no trusted key vouches for")
        elif not head.verifies_with(signer):
            bad("head", "its signature does not match it: the head was edited")
        elif head.keys_sha256 == digest and len(table) == len(keys):
            for kid, public in table.items():  # the signed head vouches for the key table
                trusted.setdefault(kid, public)

    retired: dict[str, object] = {}  # key id -> the rotation row that retired it
    for row in rows:
        where, kid = f"row {row.get('id')}", str(row.get("key_id"))
        manifest = _json(row.get("manifest"))
        if row.get("kind") == ROTATION:
            _, pair = check_rotation(manifest)
            if "new_key" in pair and key_id(pair["new_key"]) != kid:
                bad(where, f"its key id {kid} is not the new key of its rotation statement")
            for public in pair.values():
                if key_id(public) not in table:
                    bad(where, f"key {key_id(public)} of its rotation is not in the key table")
            if "old_key" in pair:
                retired[key_id(pair["old_key"])] = row.get("id")
            continue
        if not isinstance(manifest, dict):
            bad(where, "its stored manifest is not a JSON object (edited)")
            continue
        for column, value in _expected(manifest).items():
            if _normal(row.get(column), column) != _normal(value, column):
                bad(where, f"its {column} is not the one in its signed manifest (edited)")
        if kid not in table:
            bad(where, f"signed by key {kid}, which is not in the ledger's key table")
        public = trusted.get(kid)
        if public is None:
            if kid in table:
                bad(where, f"signed by key {kid}, which no trusted key vouches for")
        else:
            result = verify_manifest(manifest, None, [public])
            if not result.ok:
                failed = "; ".join(f"{w}: {d}" for w, ok, d in result.checks if not ok)
                bad(where, f"its signed manifest does not verify with key {kid}: {failed}")
        if kid in retired:
            bad(where, f"signed by key {kid} after the rotation in row {retired[kid]} retired it")
    return ChainReport(len(rows), previous, findings, tuple(sorted(trusted)))


def _expected(manifest: dict) -> dict:
    """The row columns that copy a field of the signed manifest."""
    signature = manifest.get("signature")
    provenance = manifest.get("provenance")
    provenance = provenance if isinstance(provenance, dict) else {}
    return {
        "set_name": manifest.get("synthetic_set"),
        "synthetic_sha256": manifest.get("synthetic_sha256"),
        "verdict": manifest.get("verdict"),
        "override_reason": manifest.get("override_reason"),
        "manifest_sha256": manifest.get("manifest_sha256"),
        "key_id": signature.get("key_id") if isinstance(signature, dict) else None,
        "checkpoint_sha256": provenance.get("checkpoint sha256"),
        "cohort_fingerprint": manifest.get("real_cohort_fingerprint"),
        "checks": manifest.get("checks", []),
    }


def _normal(value: object, column: str) -> object:
    if column == "checks" and isinstance(value, str):
        return _json(value)
    return value


def _json(raw: object) -> object:
    try:
        return json.loads(str(raw))
    except (json.JSONDecodeError, RecursionError):
        return None


def _public(pem: object) -> Ed25519PublicKey | None:
    try:
        key = serialization.load_pem_public_key(str(pem).encode())
    except (ValueError, UnsupportedAlgorithm):
        return None
    return key if isinstance(key, Ed25519PublicKey) else None
