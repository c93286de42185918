"""The model store: every model users train (in the browser or by the command line), kept as
checkpoint folders (``model.safetensors`` + ``manifest.json``, as the shipped ones) under one root.

Root: ``CSS_MODEL_ROOT`` (default ``models`` in the state folder, ``~/.clinical-synthesis-studio``
or ``CSS_STATE_DIR``). A model is found by its manifest and verified by hash; nothing is
registered by hand. Writers claim a name (an OS file lock, see ``core.checkpoints.claim``) and
go through a hidden temporary folder and a rename, so two sessions saving at once never leave a
half-written model nor replace each other's, and hidden folders are never listed. Opening the
store finishes or undoes what a killed writer left half-done.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import unicodedata
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from core import faults
from core.checkpoints import (
    LEFTOVER,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    Manifest,
    claim,
    leftovers_of,
    parse_manifest,
    recover_leftovers,
    recover_name,
    verify_checkpoint,
)
from core.errors import CheckpointError, ConfigError, CoreError, storage_error
from core.store.scrub import scrub_folder

CARD_FILE = "README.md"
MEMBERS = (MANIFEST_FILE, WEIGHTS_FILE, CARD_FILE)
MAX_MODEL_BYTES = 2 << 30  # a zip that expands beyond 2 GiB is refused
SETTLE_SECONDS = 10.0  # how long a reader waits for a model being replaced
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


_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()+-]+")


def safe_name(text: str, fallback: str = "model") -> str:
    """``text`` made into a name :func:`check_name` accepts: each run of other characters (a
    comma, a slash, a colon) becomes one space, accents are dropped, spaces are collapsed,
    leading characters other than a letter or digit and trailing dots are dropped, and it is cut
    to 90 characters (room for a " (k)" suffix). ``fallback`` when nothing is left."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()  # Ä -> A
    name = " ".join(_UNSAFE.sub(" ", text).split())
    name = re.sub(r"^[^A-Za-z0-9]+", "", name)[:90].rstrip(" .")
    return name or fallback


class ModelStore:
    """The store at ``root``. Opening it finishes or undoes writes a killed process left
    half-done and removes their hidden folders; ``recovered`` says what was done (the Models
    page shows it)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.recovered: list[str] = recover_leftovers(self.root)

    def _size(self, folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())

    def get(self, name: str) -> StoredModel:
        folder = self.root / check_name(name)
        if not folder.is_dir():
            self._settle(folder.name)
        try:
            return self._describe(folder)
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(f"No model '{name}' in the store at {self.root}.") from None

    def _describe(self, folder: Path) -> StoredModel:
        """The model in ``folder``, verified; one that cannot be read is listed as broken. A
        manifest of an earlier version that holds training data is scrubbed first."""
        try:
            note = scrub_folder(folder)  # before anything reads or exports it
            manifest = _verified(folder)
            size = self._size(folder)
            return StoredModel(folder.name, folder, manifest, True, "verified", size, note)
        except CheckpointError as exc:
            return StoredModel(folder.name, folder, None, False, str(exc), self._size(folder))
        except (FileNotFoundError, NotADirectoryError):
            raise
        except OSError as exc:
            return StoredModel(folder.name, folder, None, False, f"cannot be read: {exc}", 0)

    def _settle(self, name: str) -> None:
        """A name with a write in flight (or killed) in it: wait for its writer, then recover."""
        found = leftovers_of(self.root, name)
        if not found:
            return
        # only a replace (an ".old-" folder) hides an existing model: worth waiting for
        replacing = any(LEFTOVER.match(p.name)["kind"] == "old" for p in found)
        try:
            with claim(self.root / name, wait=SETTLE_SECONDS if replacing else 0.0):
                self.recovered += recover_name(self.root, name)
        except CoreError:
            pass  # still being written: listed once its writer is done

    def list(self, family: str | None = None) -> list[StoredModel]:
        """Every model folder (hidden ones, i.e. half-written, excluded), verified by hash; with
        ``family``, only the verified models of that family. A model renamed or deleted while
        it is listed is left out; one being replaced is waited for."""
        try:
            entries = list(self.root.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = {p.name for p in entries if not p.name.startswith(".") and p.is_dir()}
        names |= {m["name"] for p in entries if (m := LEFTOVER.match(p.name))}
        found = []
        for name in sorted(n for n in names if NAME.match(n)):
            try:
                found.append(self.get(name))
            except ConfigError:  # gone meanwhile
                continue
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
        """A new model: ``write(folder)`` writes it under ``name`` or, when another writer has
        that name or is writing it, the next free ``name (k)``; never replaces a model."""
        with self._new_name(name) as final:
            write(self.root / final)
            return self.get(final)

    @contextmanager
    def _new_name(self, name: str) -> Iterator[str]:
        """A free name, claimed for the caller's write (no other writer can take it)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, self.root, "Creating the model store") from None
        base = check_name(name[:90])
        for k in range(1, 1000):
            final = base if k == 1 else f"{base} ({k})"
            if (self.root / final).exists():
                continue
            with ExitStack() as held:
                try:
                    held.enter_context(claim(self.root / final))
                except CheckpointError:  # another writer is on it
                    continue
                recover_name(self.root, final)
                if (self.root / final).exists():
                    continue
                yield final
                return
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
            try:
                manifest = parse_manifest(zf.read(MANIFEST_FILE), "the model file")
                if manifest.family not in families:
                    raise ConfigError(
                        f"The model is of family '{manifest.family}', which this app does not "
                        f"know (known: {', '.join(sorted(families))})."
                    )
                with self._new_name(name or manifest.model_id) as final:
                    tmp = self.root / f".{final}.tmp-{uuid.uuid4().hex[:8]}"
                    try:
                        tmp.mkdir()
                        for member in members:
                            (tmp / member).write_bytes(zf.read(member))
                        faults.point("store.import.after_extract")
                        verify_checkpoint(tmp)
                        tmp.rename(self.root / final)
                    except OSError as exc:
                        raise storage_error(exc, self.root, "Importing the model") from None
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
            except CheckpointError as exc:
                raise ConfigError(f"The model file is refused: {exc}") from exc
        return self.get(final)

    def rename(self, name: str, new_name: str) -> StoredModel:
        src = self.get(name).folder
        dst = self.root / check_name(new_name)
        with claim(src), claim(dst):
            self.folder_for(dst.name)
            try:
                src.rename(dst)
            except OSError as exc:
                raise storage_error(exc, src, f"Renaming '{name}'") from None
        return self.get(dst.name)

    def delete(self, name: str) -> None:
        src = self.get(name).folder
        trash = self.root / f".{src.name}.deleted-{uuid.uuid4().hex[:8]}"
        with claim(src):
            try:
                src.rename(trash)  # gone from the listing at once, whatever rmtree takes
            except OSError as exc:
                raise storage_error(exc, src, f"Deleting '{name}'") from None
            shutil.rmtree(trash, ignore_errors=True)
