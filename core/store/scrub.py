"""Stored models written by earlier versions are scrubbed of training data when the store opens
them.

Before issue 28 a model trained in the Generate page stored, as its training command, the repr
of the trainer's arguments: the training table with record ids and rows of values. Such a
manifest (or a card ``README.md`` that copied it) is rewritten in place: each string field that
holds data (:func:`core.manifest_guard.data_in_string`) is replaced by :data:`NOTE`, the card is
regenerated from the scrubbed manifest, the weights' sha256 is checked again against the
manifest, and a ``scrubbed`` entry records when and which fields, so the store can say so on
every later listing. The weights are never touched.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.checkpoints import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    read_manifest,
    sha256_file,
)
from core.ehrdiff.dp import guarantee_text
from core.errors import CheckpointError
from core.manifest_guard import data_in_string, manifest_strings

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
NOTE = "removed: held training data; the model was trained in the Generate page"
SCRUBBED = "scrubbed"  # the manifest key recording a scrub
_SEEN: dict[tuple, str] = {}  # (manifest path, size, mtime) -> note: one read per change


def _scrub(value: Any, path: str, fields: list[str]) -> Any:
    if isinstance(value, str):
        if data_in_string(value) is not None:
            fields.append(path)
            return NOTE
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, f"{path}/{k}".lstrip("/"), fields) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, f"{path}[{i}]", fields) for i, v in enumerate(value)]
    return value


def card_text(raw: dict[str, Any]) -> str:
    """A model card (``README.md``) from a manifest's JSON: names, counts, hashes, command."""
    lines = [
        f"# {raw.get('model_id', '')}",
        "",
        f"Family: {raw.get('family', '')}. Created: {raw.get('created', '')}.",
        f"Weights sha256: `{raw.get('sha256', '')}`.",
        "",
        "## Training data",
        "",
        *(f"- {k}: {json.dumps(v)}" for k, v in (raw.get("data_card") or {}).items()),
        "",
        "## Training command",
        "",
        f"    {raw.get('training_command', '')}",
        "",
        "## Metrics at export",
        "",
        *(f"- {k}: {json.dumps(v)}" for k, v in (raw.get("metrics") or {}).items()),
    ]
    privacy = (raw.get("data_card") or {}).get("differential_privacy")
    if isinstance(privacy, dict):
        lines += ["", "## Differential privacy", "", guarantee_text(privacy)]
    if raw.get(SCRUBBED):
        lines += ["", "## Scrubbed", "", note_for(raw)]
    return "\n".join(lines) + "\n"


def note_for(raw: dict[str, Any]) -> str:
    done = raw.get(SCRUBBED)
    if not isinstance(done, dict):
        return ""
    fields = ", ".join(done.get("fields", [])) or "none"
    return (
        f"Training data removed from this model's files on {done.get('at', '?')} "
        f"(manifest fields: {fields}{'; card regenerated' if done.get('card') else ''}); "
        "the weights are unchanged and verified against their sha256."
    )


def _write(path: Path, text: str) -> None:
    """Replace ``path`` by a rename, so a reader sees the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.scrub-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def scrub_folder(folder: str | Path) -> str:
    """Scrub the stored model in ``folder`` if its manifest or card holds training data; the
    line saying so (also for a model scrubbed before), or "" when there is nothing to say.

    A manifest that cannot be read is left as it is: verification reports it."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    try:
        stat = path.stat()
    except OSError:
        return ""
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _SEEN:
        return _SEEN[key]
    try:
        read_manifest(folder)  # size, nesting and field types checked before anything recurses
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (CheckpointError, OSError, UnicodeDecodeError, json.JSONDecodeError):
        return ""
    if not isinstance(raw, dict):
        return ""
    fields: list[str] = []
    clean = _scrub(raw, "", fields)
    card = folder / CARD_FILE
    card_leaks = card.is_file() and (
        data_in_string(card.read_text(encoding="utf-8", errors="replace"), None) is not None
        or any(p == "training_command" for p in fields)
    )
    if fields or card_leaks:
        # The weights keep their sha256: checked, not re-blessed, so tampering still shows.
        weights = folder / WEIGHTS_FILE
        verified = weights.is_file() and sha256_file(weights) == clean.get("sha256")
        clean[SCRUBBED] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "fields": fields,
            "card": bool(card_leaks),
            "weights_sha256_verified": verified,
        }
        _write(path, json.dumps(clean, indent=2) + "\n")
        if card_leaks:
            _write(card, card_text(clean))
        log.warning(
            "scrubbed training data from stored model %s: %d manifest field(s) %s%s",
            folder.name,
            len(fields),
            ", ".join(fields),
            ", card regenerated" if card_leaks else "",
        )
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
    note = note_for(clean)
    _SEEN[key] = note
    return note


def holds_data(folder: str | Path) -> list[str]:
    """The manifest fields of ``folder`` that hold training data (for tests and audits)."""
    raw = json.loads((Path(folder) / MANIFEST_FILE).read_text(encoding="utf-8"))
    return [p for p, text in manifest_strings(raw) if data_in_string(text) is not None]
