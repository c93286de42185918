"""Releasing a set: the manifest signed with the server key and recorded in the ledger, by a
steward only."""

from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError
from core.release import settings
from core.release.gate import binding_problems
from core.release.ledger import Actor, Ledger
from core.release.signing import load_or_create_key, sign_manifest

STEWARD = "steward"


def publish(
    manifest: dict,
    actor: Actor,
    *,
    ledger: Ledger | None = None,
    key_path: Path | None = None,
) -> tuple[dict, int]:
    """Signs ``manifest`` (from :func:`core.release.gate.release_manifest`) and records it;
    returns the signed manifest and its ledger id. Refused for anyone without the steward role,
    and for a manifest whose review reviewed another cohort, split, file or settings than the
    manifest names (its checks would not be about what is released)."""
    if STEWARD not in actor.roles:
        raise ConfigError(
            f"{actor.display_name or actor.subject} does not have the '{STEWARD}' role; only a "
            "data steward can release a set."
        )
    problems = binding_problems(manifest)
    if problems:
        raise ConfigError(
            f"Refusing to release '{manifest.get('synthetic_set')}': its review does not match "
            f"what the manifest names: {'; '.join(problems)}. Run the review again on the "
            "current cohort and set, then release."
        )
    key = load_or_create_key(key_path or settings.signing_key_path())
    signed = sign_manifest(manifest, key)
    entry = (ledger or Ledger(settings.ledger_url())).record(signed, actor, key)
    return signed, entry
