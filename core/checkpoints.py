"""Checkpoint storage: ``model.safetensors`` + ``manifest.json`` in one folder.

The manifest holds the model config, a data card (training data, licence, attribution), the exact
training command, metrics at export, the format version and the weights' sha256. Loading verifies
the hash before deserialising anything; pickles are never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
_MAX_MANIFEST_BYTES = 1 << 20
MAX_MANIFEST_STRING = 2000  # characters: a command line or a note, never a table
# What the repr of a data object looks like (numpy array, pandas frame or series, scipy sparse).
DATA_REPR = re.compile(
    r"\barray\(\[|\bdtype[=:]\s*\w|\[\d+ rows x \d+ columns\]|\bcsr_(?:array|matrix)\b"
    r"|<Compressed Sparse|\bDataFrame\(|\bSeries\("
)
FRAME_ROW = re.compile(r"(?m)^\d+ {2,}\S")  # "12   40.25  1": a row of a printed DataFrame


@dataclass(frozen=True)
class Manifest:
    model_id: str
    family: str
    config: dict[str, Any]
    data_card: dict[str, Any] = field(default_factory=dict)
    training_command: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    format_version: int = FORMAT_VERSION
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model_id": self.model_id,
            "family": self.family,
            "created": self.created,
            "sha256": self.sha256,
            "training_command": self.training_command,
            "config": self.config,
            "data_card": self.data_card,
            "metrics": self.metrics,
        }


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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    folder: str | Path,
    tensors: dict[str, torch.Tensor],
    manifest: Manifest,
) -> Manifest:
    """Write weights and manifest; returns the manifest with its sha256 and timestamp filled.

    Written into a hidden sibling folder first and renamed into place, so a reader never sees a
    half-written checkpoint; other files of an existing folder (its model card) are kept."""
    folder = Path(folder)
    refuse_data(manifest.to_json(), folder.name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        weights = tmp / WEIGHTS_FILE
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(weights))
        done = Manifest(
            **{
                **manifest.__dict__,
                "sha256": sha256_file(weights),
                "created": manifest.created or datetime.now(UTC).isoformat(timespec="seconds"),
                "format_version": FORMAT_VERSION,
            }
        )
        (tmp / MANIFEST_FILE).write_text(json.dumps(done.to_json(), indent=2) + "\n")
        replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return done


def replace_folder(new: Path, folder: Path) -> None:
    """Move ``new`` to ``folder`` by renames; files of an existing ``folder`` that ``new`` lacks
    are carried over, and the old folder is removed only once the new one is in place."""
    if not folder.exists():
        new.rename(folder)
        return
    for extra in folder.iterdir():
        if not (new / extra.name).exists() and extra.is_file():
            shutil.copy2(extra, new / extra.name)
    old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
    folder.rename(old)
    new.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(folder: str | Path) -> Manifest:
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise CheckpointError(f"Checkpoint '{Path(folder).name}' has no {MANIFEST_FILE}.")
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise CheckpointError(
            f"{path.name} in '{Path(folder).name}' is too large to be a manifest."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path.name} in '{Path(folder).name}' is not valid JSON: {exc}"
        ) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path.name} in '{Path(folder).name}' must hold a JSON object.")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint '{Path(folder).name}' has format version {version!r}; "
            f"this app reads version {FORMAT_VERSION}."
        )
    missing = [k for k in ("model_id", "family", "config", "sha256") if k not in raw]
    if missing:
        raise CheckpointError(f"Manifest of '{Path(folder).name}' lacks {', '.join(missing)}.")
    if not isinstance(raw["config"], dict):
        raise CheckpointError(f"Manifest of '{Path(folder).name}': 'config' must be an object.")
    return Manifest(
        model_id=str(raw["model_id"]),
        family=str(raw["family"]),
        config=raw["config"],
        data_card=raw.get("data_card") or {},
        training_command=str(raw.get("training_command", "")),
        metrics=raw.get("metrics") or {},
        sha256=str(raw["sha256"]),
        format_version=version,
        created=str(raw.get("created", "")),
    )


def verify_checkpoint(folder: str | Path) -> Manifest:
    """The manifest of ``folder`` once its weights are present and match its sha256."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"Checkpoint '{folder.name}' has no {WEIGHTS_FILE}.")
    actual = sha256_file(weights)
    if actual != manifest.sha256:
        raise CheckpointError(
            f"Checkpoint '{folder.name}': {WEIGHTS_FILE} does not match its manifest "
            f"(sha256 {actual[:12]}..., expected {manifest.sha256[:12]}...). "
            "The file was modified or corrupted; refusing to load it."
        )
    return manifest


def load_checkpoint(
    folder: str | Path,
    *,
    family: str | None = None,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, torch.Tensor], Manifest]:
    """Verify and load a checkpoint folder.

    Raises :class:`CheckpointError` if the manifest is missing or malformed, the family differs
    from ``family``, the weights' sha256 differs from the manifest, or the file is not safetensors.
    """
    folder = Path(folder)
    manifest = verify_checkpoint(folder)
    if family is not None and manifest.family != family:
        raise CheckpointError(
            f"Checkpoint '{folder.name}' is a '{manifest.family}' model, expected '{family}'."
        )
    weights = folder / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights), device=str(torch.device(device)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"Checkpoint '{folder.name}': not a valid safetensors file ({exc})."
        ) from None
    log.info("loaded checkpoint %s (%d tensors)", folder.name, len(tensors))
    return tensors, manifest


def load_weights(
    module: torch.nn.Module, tensors: dict[str, torch.Tensor], folder: str | Path, what: str
) -> None:
    """Strictly load ``tensors`` into ``module``; a mismatch is a :class:`CheckpointError`."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"Checkpoint '{Path(folder).name}': {what} weights do not fit the config ({exc})."
        ) from None


@dataclass(frozen=True)
class CheckpointStatus:
    folder: str
    ok: bool
    detail: str
    manifest: Manifest | None


def scan_checkpoints(root: str | Path) -> list[CheckpointStatus]:
    """Verify every checkpoint folder under ``root`` (hash included) for the status panel."""
    root = Path(root)
    out: list[CheckpointStatus] = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            manifest = verify_checkpoint(folder)
            size_mb = (folder / WEIGHTS_FILE).stat().st_size / 1e6
            out.append(CheckpointStatus(folder.name, True, f"verified, {size_mb:.1f} MB", manifest))
        except CheckpointError as exc:
            out.append(CheckpointStatus(folder.name, False, str(exc), None))
    return out


class SavedModel:
    """``save`` for a model family: its weights (``tensors()``) and config (``config_json()``)
    written with a manifest naming the family, the data, the command and the metrics."""

    family: str
    model_id: str
    manifest: Manifest | None

    def tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def config_json(self) -> dict:
        raise NotImplementedError

    def save(
        self,
        folder: str | Path,
        *,
        data_card: dict,
        training_command: str,
        metrics: dict,
        extra_config: dict | None = None,
    ) -> Manifest:
        self.manifest = save_checkpoint(
            folder,
            self.tensors(),
            Manifest(
                model_id=self.model_id,
                family=self.family,
                config={**self.config_json(), **(extra_config or {})},
                data_card=data_card,
                training_command=training_command,
                metrics=metrics,
            ),
        )
        return self.manifest
