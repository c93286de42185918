"""Safe reading of user-supplied files, entirely in memory.

Everything a loader reads passes through here: size caps on the raw input and on what it
decompresses to (zip / gzip bombs), archive members read without ever being extracted to disk
(so path-traversal names are harmless and are skipped), text decoded strictly as UTF-8 with the
offending line named, delimiters sniffed, and binary garbage recognised as such.
"""

from __future__ import annotations

import csv
import io
import logging
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import pandas as pd

from core.errors import CohortError

log = logging.getLogger(__name__)

MiB = 1 << 20


@dataclass(frozen=True)
class InputLimits:
    """Caps applied to one user input. Defaults fit the 200 MB upload cap with room to decompress."""

    max_bytes: int = 512 * MiB
    max_uncompressed_bytes: int = 2048 * MiB
    max_members: int = 200_000
    max_compression_ratio: float = 250.0  # per member; honest CSV/text compresses ~5-20x


DEFAULT_LIMITS = InputLimits()

Source = bytes | bytearray | str | Path | BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
ZIP_EMPTY_MAGIC = b"PK\x05\x06"
PARQUET_MAGIC = b"PAR1"


def source_name(source: Source, name: str | None = None) -> str:
    if name:
        return name
    if isinstance(source, str | Path):
        return Path(source).name
    return str(getattr(source, "name", "uploaded file"))


def read_bytes(
    source: Source, name: str | None = None, limits: InputLimits = DEFAULT_LIMITS
) -> bytes:
    """The raw bytes of a path, an in-memory buffer (e.g. a Streamlit upload) or ``bytes``."""
    label = source_name(source, name)
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    elif isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise CohortError("file not found or not a regular file", source=label)
        if path.stat().st_size > limits.max_bytes:
            raise CohortError(
                f"file is {path.stat().st_size / MiB:.0f} MB; the limit is {limits.max_bytes / MiB:.0f} MB",
                source=label,
            )
        data = path.read_bytes()
    elif hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        data = source.read(limits.max_bytes + 1)
        if not isinstance(data, bytes | bytearray):
            raise CohortError("expected a binary file object", source=label)
        data = bytes(data)
    else:
        raise CohortError(f"cannot read input of type {type(source).__name__}", source=label)
    if len(data) > limits.max_bytes:
        raise CohortError(
            f"input is larger than the {limits.max_bytes / MiB:.0f} MB limit", source=label
        )
    if not data:
        raise CohortError("file is empty", source=label)
    return data


def _bounded_decompress(data: bytes, label: str, limits: InputLimits) -> bytes:
    """gunzip ``data`` without ever holding more than the uncompressed limit."""
    cap = min(limits.max_uncompressed_bytes, int(max(len(data), 1) * limits.max_compression_ratio))
    out = bytearray()
    decomp = zlib.decompressobj(wbits=31)
    view = memoryview(data)
    try:
        pos = 0
        while pos < len(view) or decomp.unconsumed_tail:
            chunk_in = decomp.unconsumed_tail or view[pos : pos + MiB]
            if not decomp.unconsumed_tail:
                pos += len(chunk_in)
            out += decomp.decompress(chunk_in, MiB)
            if len(out) > cap:
                raise CohortError(
                    f"gzip content expands beyond {cap / MiB:.0f} MB (compression ratio over "
                    f"{limits.max_compression_ratio:.0f}x); refusing a possible decompression bomb",
                    source=label,
                )
            if decomp.eof:
                break
    except zlib.error as exc:
        raise CohortError(f"corrupt or truncated gzip data ({exc})", source=label) from None
    if not decomp.eof:
        raise CohortError("truncated gzip data (the stream ends early)", source=label)
    return bytes(out)


def maybe_gunzip(data: bytes, label: str, limits: InputLimits = DEFAULT_LIMITS) -> bytes:
    return _bounded_decompress(data, label, limits) if data[:2] == GZIP_MAGIC else data


def looks_binary(data: bytes) -> bool:
    head = data[:8192]
    return b"\x00" in head


def decode_text(data: bytes, label: str) -> str:
    """Strict UTF-8 (BOM allowed). Non-UTF-8 input is refused with the line of the first bad byte."""
    if looks_binary(data):
        raise CohortError("this is a binary file, not text (it contains NUL bytes)", source=label)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CohortError(
            f"text is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8",
            source=label,
            line=line,
        ) from None


_DELIMITERS = ",;\t|"


def sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","


def read_csv_text(
    text: str,
    label: str,
    *,
    required: tuple[str, ...] = (),
    delimiter: str | None = None,
) -> pd.DataFrame:
    """Parse CSV text into an all-string frame (empty cells -> NaN); checks required columns.

    Column names are matched exactly first, then case-insensitively, and renamed to the
    expected spelling so loaders see canonical names.
    """
    if not text.strip():
        raise CohortError("file is empty", source=label)
    sep = delimiter or sniff_delimiter(text)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_values=["", "NA", "NaN", "nan", "NULL", "null", "None"],
            skipinitialspace=True,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise CohortError("file has no header row or no data", source=label) from None
    except pd.errors.ParserError as exc:
        raise CohortError(f"not a well-formed table ({exc})", source=label) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return _require_columns(frame, required, label)


def _require_columns(frame: pd.DataFrame, required: tuple[str, ...], label: str) -> pd.DataFrame:
    """Check required columns (exact, then case-insensitive, renamed to the expected spelling)
    and that there is at least one data row; shared by the CSV and Parquet paths."""
    lower = {c.lower(): c for c in frame.columns}
    rename = {}
    missing = []
    for want in required:
        if want in frame.columns:
            continue
        if want.lower() in lower:
            rename[lower[want.lower()]] = want
        else:
            missing.append(want)
    if missing:
        found = ", ".join(frame.columns[:12]) + (" ..." if len(frame.columns) > 12 else "")
        hint = ""
        if len(frame.columns) == 1 and any(d in frame.columns[0] for d in _DELIMITERS):
            hint = " The header looks like one column: is the delimiter unusual?"
        raise CohortError(
            f"missing required column(s) {', '.join(repr(m) for m in missing)}; found: {found}.{hint}",
            source=label,
        )
    if frame.empty:
        raise CohortError("table has a header but no data rows", source=label)
    return frame.rename(columns=rename)


def read_table(
    source: Source,
    name: str | None = None,
    *,
    required: tuple[str, ...] = (),
    limits: InputLimits = DEFAULT_LIMITS,
) -> pd.DataFrame:
    """CSV (any common delimiter), gzip CSV, Parquet, or a zip holding exactly one of those."""
    label = source_name(source, name)
    data = read_bytes(source, label, limits)
    if data[:4] in (ZIP_MAGIC, ZIP_EMPTY_MAGIC):
        members = [m for m in iter_archive(data, label, limits) if _is_table_name(m[0])]
        if len(members) != 1:
            raise CohortError(
                f"a zip must hold exactly one .csv/.csv.gz/.parquet table, found {len(members)}",
                source=label,
            )
        inner, data = members[0]
        label = f"{label}/{inner}"
    data = maybe_gunzip(data, label, limits)
    if data[:4] == PARQUET_MAGIC:
        return _require_columns(_read_parquet(data, label), required, label)
    return read_csv_text(decode_text(data, label), label, required=required)


def _read_parquet(data: bytes, label: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CohortError(f"not a readable Parquet file ({exc})", source=label) from None
    frame = table.to_pandas()
    frame.columns = [str(c).strip() for c in frame.columns]
    # Loaders parse values themselves, so hand them strings (NaN = missing) like the CSV path.
    return frame.astype(str).where(frame.notna())


def _is_table_name(name: str) -> bool:
    lower = name.lower()
    return lower.endswith((".csv", ".csv.gz", ".parquet", ".tsv", ".txt"))


def _safe_member_name(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and not name.startswith("/")


def iter_archive(
    data: bytes, label: str, limits: InputLimits = DEFAULT_LIMITS
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, bytes)`` of regular files in a zip, tar or tar.gz held in memory.

    Members are never written to disk. Absolute or ``..`` names, links and devices are skipped
    (logged, without their content). Total size and per-member ratio are capped.
    """
    if data[:4] in (ZIP_MAGIC, ZIP_EMPTY_MAGIC):
        yield from _iter_zip(data, label, limits)
        return
    raw = data
    if data[:2] == GZIP_MAGIC:
        raw = _bounded_decompress(data, label, limits)
    if not _is_tar(raw):
        raise CohortError("not a zip, tar or tar.gz archive", source=label)
    yield from _iter_tar(raw, label, limits)


def _is_tar(raw: bytes) -> bool:
    return len(raw) >= 512 and raw[257:262] == b"ustar"


def _iter_zip(data: bytes, label: str, limits: InputLimits) -> Iterator[tuple[str, bytes]]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise CohortError(f"corrupt or truncated zip archive ({exc})", source=label) from None
    if len(infos) > limits.max_members:
        raise CohortError(
            f"archive has {len(infos)} members; the limit is {limits.max_members}", source=label
        )
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        if not _safe_member_name(info.filename):
            log.warning("skipping unsafe archive member name in %s", label)
            continue
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if total > limits.max_uncompressed_bytes or ratio > limits.max_compression_ratio:
            raise CohortError(
                "archive expands beyond the size limit or with an implausible compression ratio; "
                "refusing a possible zip bomb",
                source=label,
            )
        try:
            with zf.open(info) as fh:
                content = fh.read(info.file_size + 1)
        except (
            zipfile.BadZipFile,
            OSError,
            EOFError,
            zlib.error,
            NotImplementedError,
            RuntimeError,
        ) as exc:
            raise CohortError(
                f"cannot read member '{info.filename}' ({exc})", source=label
            ) from None
        if len(content) > info.file_size:
            raise CohortError(
                f"member '{info.filename}' is larger than its header says; refusing it",
                source=label,
            )
        yield info.filename, content


def _iter_tar(raw: bytes, label: str, limits: InputLimits) -> Iterator[tuple[str, bytes]]:
    total = 0
    count = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
            for member in tf:
                count += 1
                if count > limits.max_members:
                    raise CohortError(
                        f"archive has more than {limits.max_members} members", source=label
                    )
                if not member.isreg():
                    continue
                if not _safe_member_name(member.name):
                    log.warning("skipping unsafe archive member name in %s", label)
                    continue
                total += member.size
                if total > limits.max_uncompressed_bytes:
                    raise CohortError("archive expands beyond the size limit", source=label)
                fh = tf.extractfile(member)
                if fh is None:
                    continue
                yield member.name, fh.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CohortError(f"corrupt or truncated tar archive ({exc})", source=label) from None


def list_data_files(
    root: str | Path, extensions: tuple[str, ...], max_files: int = 2000
) -> list[str]:
    """Relative paths of files under ``root`` whose name ends with one of ``extensions``."""
    base = Path(root)
    if not base.is_dir():
        return []
    out = []
    for path in sorted(base.rglob("*")):
        if path.is_file() and path.name.lower().endswith(tuple(f".{e}" for e in extensions)):
            out.append(path.relative_to(base).as_posix())
            if len(out) >= max_files:
                break
    return out


def resolve_inside(root: str | Path, relative: str) -> Path:
    """``root/relative``, refusing anything that escapes ``root`` (``..``, absolute, symlinks out)."""
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if base != target and base not in target.parents:
        raise CohortError(f"'{relative}' is outside the data folder")
    return target
