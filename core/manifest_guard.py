"""No training data in a manifest: every string a manifest holds is a command line, a note, a
name or a hash, never a table. :func:`refuse_data` is called by every writer of a manifest (the
checkpoint save, the ledger); the store's scrub finds old manifests that broke it (issue #28).
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import CheckpointError

MAX_MANIFEST_STRING = 2000  # characters: a command line or a note, never a table
# What the repr of a data object looks like (numpy array, pandas frame or series, scipy sparse).
DATA_REPR = re.compile(
    r"\barray\(\[|\bdtype[=:]\s*\w|\[\d+ rows x \d+ columns\]|\bcsr_(?:array|matrix)\b"
    r"|<Compressed Sparse|\bDataFrame\(|\bSeries\("
)
FRAME_ROW = re.compile(r"(?m)^\d+ {2,}\S")  # "12   40.25  1": a row of a printed DataFrame


def manifest_strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string value in a manifest's JSON, with its path (``data_card/source``)."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in manifest_strings(v, f"{path}/{k}".lstrip("/"))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in manifest_strings(v, f"{path}[{i}]")]
    return []


def data_in_string(text: str, max_chars: int | None = MAX_MANIFEST_STRING) -> str | None:
    """Why ``text`` may hold training data (longer than ``max_chars``, too long for a command or
    a note, or the repr of a data object), or None."""
    if max_chars is not None and len(text) > max_chars:
        return f"{len(text):,} characters (at most {max_chars:,})"
    if DATA_REPR.search(text) or len(FRAME_ROW.findall(text)) >= 3:
        return "the repr of a data object"
    return None


def data_in_manifest(raw: dict[str, Any]) -> list[str]:
    """Where and why ``raw`` (a manifest's JSON) may hold training data; empty when nowhere."""
    found = []
    for where, text in manifest_strings(raw):
        why = data_in_string(text)
        if why is not None:
            found.append(f"'{where}' holds {why}")
    return found


def refuse_data(raw: dict[str, Any], name: str) -> None:
    """CheckpointError when the manifest ``raw`` of ``name`` may hold training data."""
    leaks = data_in_manifest(raw)
    if leaks:
        raise CheckpointError(
            f"Manifest of '{name}' refused: {'; '.join(leaks)}. A manifest states aggregates, "
            "hashes and a command line, never training data."
        )
