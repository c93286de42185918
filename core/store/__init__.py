"""The model store: every model users train (in the browser or by the command line), kept as
checkpoint folders (``model.safetensors`` + ``manifest.json``, as the shipped ones) under one root.

Root: ``CSS_MODEL_ROOT`` (default ``models`` in the state folder, ``~/.clinical-synthesis-studio``
or ``CSS_STATE_DIR``). A model is found by its manifest and verified by hash; nothing is
registered by hand. Writers go through a hidden temporary folder and a rename, so two sessions
saving at once never leave a half-written model, and hidden folders are never listed.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.checkpoints import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    Manifest,
    read_manifest,
    verify_checkpoint,
)
from core.errors import CheckpointError, ConfigError
from core.store.scrub import scrub_folder

CARD_FILE = "README.md"
MEMBERS = (MANIFEST_FILE, WEIGHTS_FILE, CARD_FILE)
MAX_MODEL_BYTES = 2 << 30  # a zip that expands beyond 2 GiB is refused
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,99}$")


def default_root() -> Path:
    if os.environ.get("CSS_MODEL_ROOT"):
        return Path(os.environ["CSS_MODEL_ROOT"])
    state = os.environ.get("CSS_STATE_DIR") or Path.home() / ".clinical-synthesis-studio"
    return Path(state) / "models"


@dataclass(frozen=True)
class StoredModel:
    name: str  # the folder name, unique in the store
    folder: Path
    manifest: Manifest | None  # None when the folder does not verify
    ok: bool
    detail: str  # "verified" or why not
    size_bytes: int
    note: str = ""  # e.g. training data removed from a manifest written by an earlier version

    @property
    def family(self) -> str | None:
        return self.manifest.family if self.manifest else None


_VERIFIED: dict[tuple, Manifest] = {}  # (folder, files' size and mtime) -> verified manifest


def _verified(folder: Path) -> Manifest:
    """``verify_checkpoint``, hashed again only when a file of the folder changed (pages list the
    store on every rerun)."""
    stats = tuple(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file()
    )
    key = (str(folder), stats)
    if key not in _VERIFIED:
        _VERIFIED[key] = verify_checkpoint(folder)
    return _VERIFIED[key]


def check_name(name: str) -> str:
    name = name.strip()
    if not NAME.match(name) or name.endswith("."):
        raise ConfigError(
            f"'{name}' cannot name a model: use up to 100 letters, digits, spaces and . _ ( ) + -, "
            "starting with a letter or digit."
        )
    return name


class ModelStore:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def _size(self, folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())

    def get(self, name: str) -> StoredModel:
        folder = self.root / check_name(name)
        if not folder.is_dir():
            raise ConfigError(f"No model '{name}' in the store at {self.root}.")
        note = scrub_folder(folder)  # before anything reads or exports it
        try:
            manifest = _verified(folder)
            return StoredModel(name, folder, manifest, True, "verified", self._size(folder), note)
        except CheckpointError as exc:
            return StoredModel(name, folder, None, False, str(exc), self._size(folder), note)

    def list(self, family: str | None = None) -> list[StoredModel]:
        """Every model folder (hidden ones, i.e. half-written, excluded), verified by hash; with
        ``family``, only the verified models of that family."""
        if not self.root.is_dir():
            return []
        names = sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        found = [self.get(n) for n in names if NAME.match(n)]
        return found if family is None else [m for m in found if m.ok and m.family == family]

    def free_name(self, base: str) -> str:
        """``base``, or ``base (2)``, ``base (3)``... when taken."""
        base = check_name(base[:90])
        name, k = base, 2
        while (self.root / name).exists():
            name, k = f"{base} ({k})", k + 1
        return name

    def folder_for(self, name: str) -> Path:
        """Where a new model called ``name`` goes (the name must be free)."""
        folder = self.root / check_name(name)
        if folder.exists():
            raise ConfigError(f"A model named '{name}' is already in the store.")
        return folder

    def save(self, write: Callable[[Path], object], name: str) -> StoredModel:
        """A new model: ``write(folder)`` fills a hidden folder, which is then renamed to ``name``
        or, when another writer took it meanwhile, to the next free ``name (k)``."""
        tmp = self._temporary()
        try:
            write(tmp / "model")
            return self.get(self._claim(tmp / "model", name))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _claim(self, folder: Path, name: str) -> str:
        """Rename ``folder`` into the store under a free name; never replaces a model."""
        for _ in range(1000):
            final = self.free_name(name)
            try:
                os.rename(folder, self.root / final)  # fails when another writer got there first
                return final
            except OSError:
                if not (self.root / final).exists():
                    raise
        raise ConfigError(f"Could not find a free name for '{name}' in the store.")

    def export_zip(self, name: str) -> bytes:
        """The model as one file: its weights, manifest and card in a zip."""
        model = self.get(name)
        if not model.ok:
            raise ConfigError(f"'{name}' does not verify ({model.detail}); it is not exported.")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for member in MEMBERS:
                if (model.folder / member).is_file():
                    zf.write(model.folder / member, member)
        return buf.getvalue()

    def import_zip(self, data: bytes, families: set[str], name: str | None = None) -> StoredModel:
        """A model file made by :meth:`export_zip`, verified before it joins the store: its
        manifest must be readable, of a known family and format, and the weights must match it."""
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise ConfigError(
                "Not a model file: a model is a .zip made by Download on the Models page."
            ) from None
        with zf:
            members = {i.filename: i for i in zf.infolist() if not i.is_dir()}
            unknown = sorted(set(members) - set(MEMBERS))
            if unknown or not {MANIFEST_FILE, WEIGHTS_FILE} <= set(members):
                raise ConfigError(
                    f"Not a model file: it must hold {MANIFEST_FILE} and {WEIGHTS_FILE} only "
                    f"(and optionally {CARD_FILE}); found {', '.join(sorted(members)) or 'nothing'}."
                )
            if sum(i.file_size for i in members.values()) > MAX_MODEL_BYTES:
                raise ConfigError("The model file expands beyond 2 GiB; refused.")
            tmp = self._temporary()
            try:
                for member in members:
                    (tmp / member).write_bytes(zf.read(member))
                manifest = read_manifest(tmp)
                if manifest.family not in families:
                    raise ConfigError(
                        f"The model is of family '{manifest.family}', which this app does not "
                        f"know (known: {', '.join(sorted(families))})."
                    )
                verify_checkpoint(tmp)
                final = self._claim(tmp, name or manifest.model_id)
            except CheckpointError as exc:
                raise ConfigError(f"The model file is refused: {exc}") from exc
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return self.get(final)

    def rename(self, name: str, new_name: str) -> StoredModel:
        src = self.get(name).folder
        dst = self.folder_for(new_name)
        src.rename(dst)
        return self.get(dst.name)

    def delete(self, name: str) -> None:
        src = self.get(name).folder
        trash = self.root / f".{src.name}.deleted-{uuid.uuid4().hex[:8]}"
        src.rename(trash)  # gone from the listing at once, whatever rmtree takes
        shutil.rmtree(trash, ignore_errors=True)

    def _temporary(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".import-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        return tmp
