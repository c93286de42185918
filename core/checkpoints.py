"""Checkpoint storage: ``model.safetensors`` + ``manifest.json`` in one folder.

The manifest holds the model config, a data card (training data, licence, attribution), the exact
training command, metrics at export, the format version and the weights' sha256. Loading verifies
the hash before deserialising anything; pickles are never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from core import faults
from core.errors import CheckpointError, CoreError, storage_error
from core.manifest_guard import refuse_data

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
_MAX_MANIFEST_BYTES = 1 << 20


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

    Written (and fsynced) into a hidden sibling folder first and renamed into place under the
    name's claim, so a reader never sees a half-written checkpoint and two writers never
    interleave; other files of an existing folder (its model card) are kept. A full, read-only
    or forbidden disk is a :class:`StorageError`; a name another process is writing is a
    :class:`CheckpointError`."""
    folder = Path(folder)
    refuse_data(manifest.to_json(), folder.name)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, folder.parent, "Creating the model folder") from None
    with claim(folder):
        recover_name(folder.parent, folder.name)  # leftovers of an earlier killed write
        tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            data = save_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
            _write_synced(tmp / WEIGHTS_FILE, data)
            faults.point("checkpoint.save.after_weights")
            done = Manifest(
                **{
                    **manifest.__dict__,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "created": manifest.created or datetime.now(UTC).isoformat(timespec="seconds"),
                    "format_version": FORMAT_VERSION,
                }
            )
            text = json.dumps(done.to_json(), indent=2) + "\n"
            _write_synced(tmp / MANIFEST_FILE, text.encode("utf-8"))
            faults.point("checkpoint.save.after_manifest")
            replace_folder(tmp, folder)
        except OSError as exc:
            raise storage_error(exc, folder, f"Saving the model '{folder.name}'") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return done


def _write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` and flush it to the disk before anything is renamed onto it."""
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_folder(new: Path, folder: Path) -> None:
    """Move ``new`` to ``folder`` by renames; files of an existing ``folder`` that ``new`` lacks
    are carried over, and the old folder is removed only once the new one is in place.

    The caller holds ``claim(folder)``. A kill between the two renames leaves ``.NAME.old-*``
    (the previous version) and ``.NAME.tmp-*`` (the new one): :func:`recover_leftovers` rolls
    forward to the new one if it verifies, else back to the old one."""
    if not folder.exists():
        new.rename(folder)
        _sync_folder(folder.parent)
        return
    for extra in folder.iterdir():
        if not (new / extra.name).exists() and extra.is_file():
            shutil.copy2(extra, new / extra.name)
    faults.point("checkpoint.replace.before_renames")
    old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
    folder.rename(old)
    faults.point("checkpoint.replace.after_first_rename")
    new.rename(folder)
    _sync_folder(folder.parent)
    faults.point("checkpoint.replace.after_second_rename")
    shutil.rmtree(old, ignore_errors=True)


# --- name claims and recovery of interrupted writes ------------------------------------------------
LOCKS = ".locks"  # per-name lock files, beside the folders they guard
LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old|deleted)-[0-9a-f]{8}$")


@contextmanager
def claim(folder: str | Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the writer's lock on ``folder``'s name (an OS file lock: released when the process
    dies). Re-entrant within one thread; another thread or process waits up to ``wait`` seconds,
    then gets a :class:`CheckpointError` saying the name is being written."""
    folder = Path(folder)
    locks = folder.parent / LOCKS
    try:
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(locks / f"{folder.name}.lock", is_singleton=True)
        lock.acquire(timeout=wait)
    except Timeout:
        raise CheckpointError(
            f"'{folder.name}' in {folder.parent} is being written by another process or session; "
            "wait for it to finish, or choose another name."
        ) from None
    except OSError as exc:
        raise storage_error(exc, locks, f"Locking '{folder.name}' for writing") from None
    try:
        yield
    finally:
        lock.release()


def recover_leftovers(parent: str | Path) -> list[str]:
    """Finish or undo every interrupted write under ``parent`` whose writer is gone, and remove
    the hidden folders it left; returns one line per action (also logged). Names being written
    right now are left to their writers."""
    parent = Path(parent)
    try:
        entries = [p.name for p in parent.iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = sorted({m["name"] for e in entries if (m := LEFTOVER.match(e))})
    notes: list[str] = []
    for name in names:
        try:
            with claim(parent / name):
                notes += recover_name(parent, name)
        except CoreError:  # being written, or the lock folder cannot be made: left as it is
            continue
    return notes


def leftovers_of(parent: Path, name: str) -> list[Path]:
    """The hidden folders interrupted writes of ``name`` left in ``parent``."""
    try:
        return sorted(
            p
            for p in parent.iterdir()
            if (m := LEFTOVER.match(p.name)) is not None and m["name"] == name
        )
    except (FileNotFoundError, NotADirectoryError):
        return []


def recover_name(parent: Path, name: str) -> list[str]:
    """The recovery of one name; the caller holds ``claim(parent / name)``."""
    found = leftovers_of(parent, name)
    if not found:
        return []
    target = parent / name
    notes = []
    kinds = {p: LEFTOVER.match(p.name)["kind"] for p in found}
    if not target.exists():
        newer = [p for p in found if kinds[p] == "tmp" and _verifies(p)]
        older = [p for p in found if kinds[p] == "old"]
        if newer:  # the new version was complete: finish the interrupted save
            pick = max(newer, key=lambda p: p.stat().st_mtime_ns)
            pick.rename(target)
            notes.append(f"'{name}': finished an interrupted save (rolled forward).")
        elif older:  # the new version was not complete: keep the previous one
            pick = max(older, key=lambda p: p.stat().st_mtime_ns)
            pick.rename(target)
            notes.append(
                f"'{name}': undid an interrupted save (rolled back to the previous version)."
            )
        else:
            pick = None
        if pick is not None:
            _sync_folder(parent)
            found.remove(pick)
    if found:
        size = sum(_tree_bytes(p) for p in found)
        for p in found:
            shutil.rmtree(p, ignore_errors=True)
        notes.append(
            f"'{name}': removed {len(found)} leftover folder(s) of interrupted writes "
            f"({size / 1e6:.1f} MB)."
        )
    for note in notes:
        log.warning("%s: %s", parent, note)
    return notes


def _verifies(folder: Path) -> bool:
    try:
        verify_checkpoint(folder)
        return True
    except (CheckpointError, OSError):
        return False


def _tree_bytes(folder: Path) -> int:
    total = 0
    for p in folder.rglob("*"):
        try:
            total += p.stat().st_size if p.is_file() else 0
        except OSError:
            pass
    return total


# --- reading ----------------------------------------------------------------------------------------
MAX_NESTING = 32  # a manifest is a few levels deep; deeper JSON is refused, not recursed into
_TEXT_FIELDS = ("model_id", "family", "sha256", "training_command", "created")
_OBJECT_FIELDS = ("config", "data_card", "metrics")


def read_manifest(folder: str | Path) -> Manifest:
    path = Path(folder) / MANIFEST_FILE
    where = Path(folder).name
    try:
        if not path.is_file():
            raise CheckpointError(f"Checkpoint '{where}' has no {MANIFEST_FILE}.")
        if path.stat().st_size > _MAX_MANIFEST_BYTES:
            raise CheckpointError(f"{path.name} in '{where}' is too large to be a manifest.")
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path.name} in '{where}' cannot be read: {exc.strerror}.") from None
    return parse_manifest(data, where)


def parse_manifest(data: bytes, where: str) -> Manifest:
    """A manifest from its bytes: valid JSON, a known format version, fields of the right types
    and no deeper than :data:`MAX_NESTING`; anything else is a :class:`CheckpointError`."""
    if len(data) > _MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{MANIFEST_FILE} in '{where}' is too large to be a manifest.")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{MANIFEST_FILE} in '{where}' is not valid JSON: {exc}") from None
    except RecursionError:
        raise CheckpointError(
            f"{MANIFEST_FILE} in '{where}' is nested too deeply to be a manifest."
        ) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{MANIFEST_FILE} in '{where}' must hold a JSON object.")
    version = raw.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise CheckpointError(
            f"Checkpoint '{where}' has format version {repr(version)[:20]}; "
            f"this app reads version {FORMAT_VERSION}."
        )
    missing = [k for k in ("model_id", "family", "config", "sha256") if k not in raw]
    if missing:
        raise CheckpointError(f"Manifest of '{where}' lacks {', '.join(missing)}.")
    _check_fields(raw, where)
    return Manifest(
        model_id=raw["model_id"],
        family=raw["family"],
        config=raw["config"],
        data_card=raw.get("data_card") or {},
        training_command=raw.get("training_command") or "",
        metrics=raw.get("metrics") or {},
        sha256=raw["sha256"],
        format_version=version,
        created=raw.get("created") or "",
    )


def _check_fields(raw: dict, where: str) -> None:
    """Field types and nesting depth, so no page or loader meets a string where it reads keys."""
    for key in _TEXT_FIELDS:
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise CheckpointError(
                f"Manifest of '{where}': '{key}' must be text, got {type(raw[key]).__name__}."
            )
    for key in _OBJECT_FIELDS:
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise CheckpointError(
                f"Manifest of '{where}': '{key}' must be an object, got {type(raw[key]).__name__}."
            )
    if not re.fullmatch(r"[0-9a-f]{64}", raw["sha256"]):
        raise CheckpointError(f"Manifest of '{where}': 'sha256' is not a sha256 hex digest.")
    stack = [(raw, 1)]
    while stack:  # iterative: a deep manifest must not exhaust the interpreter's stack
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            raise CheckpointError(
                f"Manifest of '{where}' is nested more than {MAX_NESTING} levels deep."
            )
        children = value.values() if isinstance(value, dict) else value
        stack += [(v, depth + 1) for v in children if isinstance(v, dict | list)]


def verify_checkpoint(folder: str | Path) -> Manifest:
    """The manifest of ``folder`` once its weights are present and match its sha256."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"Checkpoint '{folder.name}' has no {WEIGHTS_FILE}.")
    try:
        actual = sha256_file(weights)
    except OSError as exc:
        raise CheckpointError(
            f"Checkpoint '{folder.name}': {WEIGHTS_FILE} cannot be read ({exc.strerror})."
        ) from None
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
        except FileNotFoundError:  # renamed or replaced while scanning: not listed this time
            continue
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
