"""The artifact scan: no file the app wrote holds a training record's id or a row of its values.

Given the training cohort (a table with a record-id column), :func:`scan` walks files and folders
(the model store, the state folder, downloads, logs, test outputs), opens zip and gzip members,
SQLite databases (dumped as SQL text), Parquet files (as CSV), safetensors headers, and plotly's
binary arrays in HTML/JSON (``"bdata"``), and reports:

- **record id**: an id of the cohort as a whole token (not inside a longer word or number);
- **row**: 4 consecutive distinctive values of one record (in its column order) found in one
  file in that order, each within the record's own column distance (+2 tokens) of the previous:
  a CSV, JSON, repr or HTML copy of the table, whatever its number format;
- **column**: 8 consecutive distinctive values of one column (in record order) found in that
  order, as closely: a columnar dump (a plot of the raw values, a JSON column).

A value is *distinctive* when it has at least 3 significant digits and at most
``max(2, 0.2% of records)`` records hold it in that column: aggregates (means, quantiles, the sorted
support of a column) and independent synthetic records do not line up with one record this way,
a copy of the table does (tests/test_artifact_scan.py holds the known answers).

Images and model weights are not read (no text in them; weights are checked by the privacy
metrics, not here); what was skipped is counted in the result. Hits name the file and the record
or column position, never the value or the id itself: the scan's own output is a log too.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import sqlite3
import struct
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROW_RUN = 4
COLUMN_RUN = 8
SLACK = 2  # tokens a copy may add between two values (an index, an id, a null)
MIN_ID_CHARS = 5  # shorter ids would match ordinary words and numbers
SKIPPED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".dcm", ".pt", ".pth"}

NUMBER = re.compile(
    r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])|(?<![\w])(?:null|NaN|nan|None)(?![\w])"
)
WORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.:/+-]*[A-Za-z0-9])?")
# plotly's base64 arrays; HTML writers escape "/" and "+" as \u002f and \u002b
BDATA = re.compile(r'\{[^{}]*"bdata"\s*:\s*"((?:[A-Za-z0-9+/=]|\\u[0-9a-fA-F]{4})*)"[^{}]*\}')
BDATA_DTYPE = re.compile(r'"dtype"\s*:\s*"(\w+)"')
PLOTLY_DTYPES = {
    "f8": "<f8", "f4": "<f4", "i1": "i1", "u1": "u1", "i2": "<i2", "u2": "<u2",
    "i4": "<i4", "u4": "<u4", "i8": "<i8", "u8": "<u8",
}  # fmt: skip


def canonical(value: float) -> float:
    """The value as 6 significant digits: CSV, JSON, float32 and repr forms compare equal."""
    return float(f"{value:.6g}")


def significant_digits(value: float) -> int:
    """3 for 138 and 0.00123, 4 for 40.25, 2 for 3.6, 55.0 and 160."""
    return len(f"{abs(value):.6g}".split("e")[0].replace(".", "").strip("0"))


@dataclass(frozen=True)
class TrainingCohort:
    """What the scan looks for: record ids, and the distinctive values of each record (row)
    and each column, in order."""

    ids: frozenset[str]
    rows: tuple[tuple[tuple[int, float], ...], ...]  # per record: (column index, value)
    columns: tuple[tuple[tuple[int, float], ...], ...]  # per column: (record index, value)
    unscannable_ids: int = 0

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, id_column: str) -> TrainingCohort:
        ids = [str(v) for v in frame[id_column]]
        numeric = frame.drop(columns=id_column).select_dtypes("number").to_numpy(float)
        limit = max(2, int(0.002 * len(frame)))
        rows: list[list[tuple[int, float]]] = [[] for _ in range(len(frame))]
        columns: list[list[tuple[int, float]]] = []
        for j in range(numeric.shape[1]):
            col = [canonical(v) if np.isfinite(v) else np.nan for v in numeric[:, j]]
            counts = pd.Series(col).value_counts().to_dict()
            keep = [
                (i, v)
                for i, v in enumerate(col)
                if np.isfinite(v) and counts[v] <= limit and significant_digits(v) >= 3
            ]
            columns.append(keep)
            for i, v in keep:
                rows[i].append((j, v))
        scannable = {i for i in ids if len(i) >= MIN_ID_CHARS}
        return cls(
            frozenset(scannable),
            tuple(tuple(r) for r in rows),
            tuple(tuple(c) for c in columns),
            len(set(ids)) - len(scannable),
        )

    @classmethod
    def from_file(cls, path: str | Path, id_column: str) -> TrainingCohort:
        path = Path(path)
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        return cls.from_frame(frame, id_column)


@dataclass(frozen=True)
class Hit:
    file: str
    kind: str  # "record id", "row", "column"
    where: str  # record or column position (never the value or the id)

    def __str__(self) -> str:
        return f"{self.file}: {self.kind} ({self.where})"


@dataclass
class ScanResult:
    hits: list[Hit] = field(default_factory=list)
    files: int = 0
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{len(self.hits)} hit(s) in {self.files} file(s) scanned"
        return head + "".join(f"\n  {h}" for h in self.hits[:20])


# --- reading files as text and numbers ------------------------------------------------------------
def _texts(name: str, data: bytes, skipped: list[str]) -> Iterable[tuple[str, str]]:
    """(name, text) of a file and of whatever it contains."""
    if Path(name).suffix.lower() in SKIPPED_SUFFIXES:
        skipped.append(name)
        return
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        yield from _texts(f"{name}!{info.filename}", zf.read(info), skipped)
            return
        except zipfile.BadZipFile:
            pass
    if data[:2] == b"\x1f\x8b":
        try:
            yield from _texts(name.removesuffix(".gz"), gzip.decompress(data), skipped)
            return
        except (OSError, EOFError):
            pass
    if data[:16] == b"SQLite format 3\x00":
        with tempfile.NamedTemporaryFile(suffix=".sqlite3") as tmp:
            tmp.write(data)
            tmp.flush()
            conn = sqlite3.connect(tmp.name)
            try:
                yield name, "\n".join(conn.iterdump())
            finally:
                conn.close()
        return
    if data[:4] == b"PAR1":
        yield name, pd.read_parquet(io.BytesIO(data)).to_csv(index=False)
        return
    if name.endswith(".safetensors") and len(data) >= 8:
        (n,) = struct.unpack("<Q", data[:8])
        yield f"{name} (header)", data[8 : 8 + n].decode("utf-8", "replace")
        skipped.append(f"{name} (weights)")
        return
    yield name, data.decode("utf-8") if _is_utf8(data) else data.decode("latin-1")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _numbers(text: str) -> list[float]:
    """The numbers of ``text`` in order (null/NaN as NaN, keeping positions); plotly's base64
    arrays decoded in place."""
    out: list[float] = []

    def plain(segment: str) -> None:
        for m in NUMBER.finditer(segment):
            tok = m.group(0)
            out.append(np.nan if tok[0] in "nNA" else canonical(float(tok)))

    last = 0
    for m in BDATA.finditer(text):
        plain(text[last : m.start()])
        dtype = BDATA_DTYPE.search(m.group(0))
        if dtype and dtype.group(1) in PLOTLY_DTYPES:
            try:
                b64 = json.loads(f'"{m.group(1)}"')
                raw = np.frombuffer(base64.b64decode(b64), PLOTLY_DTYPES[dtype.group(1)])
                out.extend(canonical(v) if np.isfinite(v) else np.nan for v in raw.astype(float))
            except ValueError:
                pass
        last = m.end()
    plain(text[last:])
    return out


def _ids_in(text: str, ids: frozenset[str]) -> bool:
    """Whether an id occurs as a whole token: alphanumeric on neither side."""
    for m in WORD.finditer(text):
        word = m.group(0)
        if word in ids:
            return True
        cuts = [0] + [k + 1 for k, ch in enumerate(word) if not ch.isalnum()]
        ends = [k for k, ch in enumerate(word) if not ch.isalnum()] + [len(word)]
        for a in cuts:
            for b in ends:
                if b > a and word[a:b] in ids:
                    return True
    return False


def _runs(tokens: list[float], sequences, need: int) -> list[int]:
    """Sequences of which ``need`` consecutive entries occur in ``tokens`` in order, each at most
    (coordinate distance + SLACK) tokens after the previous."""
    index: dict[float, list[tuple[int, int, int]]] = defaultdict(list)
    for s, seq in enumerate(sequences):
        for k, (coord, v) in enumerate(seq):
            index[v].append((s, k, coord))
    last: dict[tuple[int, int], tuple[int, int]] = {}  # (sequence, k) -> (token position, run)
    found: set[int] = set()
    for p, v in enumerate(tokens):
        for s, k, coord in index.get(v, ()):
            run = 1
            if k > 0 and (prev := last.get((s, k - 1))) is not None:
                gap = coord - sequences[s][k - 1][0]
                if 1 <= p - prev[0] <= gap + SLACK:
                    run = prev[1] + 1
            last[(s, k)] = (p, run)
            if run >= need:
                found.add(s)
    return sorted(found)


def scan_text(name: str, text: str, cohort: TrainingCohort) -> list[Hit]:
    hits = []
    if cohort.ids and _ids_in(text, cohort.ids):
        hits.append(Hit(name, "record id", "an id of the training cohort"))
    tokens = _numbers(text)
    for r in _runs(tokens, cohort.rows, ROW_RUN):
        hits.append(Hit(name, "row", f"record #{r}"))
    for c in _runs(tokens, cohort.columns, COLUMN_RUN):
        hits.append(Hit(name, "column", f"column #{c}"))
    return hits


def scan(paths: Iterable[str | Path], cohort: TrainingCohort) -> ScanResult:
    """Every file under ``paths`` (files or folders; missing ones ignored)."""
    result = ScanResult()
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file())
    for path in dict.fromkeys(files):
        result.files += 1
        for name, text in _texts(str(path), path.read_bytes(), result.skipped):
            result.hits += scan_text(name, text, cohort)
    return result


def assert_no_patient_data(paths: Iterable[str | Path], cohort: TrainingCohort) -> ScanResult:
    result = scan(paths, cohort)
    assert result.files > 0, "the artifact scan found no file to scan"
    assert not result.hits, f"patient data in artifacts: {result}"
    return result


def toy_table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Records with distinctive ids (REC-123457, ...) and values with 3-5 significant digits."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "record_id": [f"REC-{123457 + 7 * i}" for i in range(n)],
            "age": np.round(rng.uniform(18, 95, n), 2),
            "sex": rng.integers(0, 2, n),
            "heart_rate": np.round(rng.normal(88, 14, n), 2),
            "lactate": np.round(rng.lognormal(0.5, 0.4, n), 3),
            "creatinine": np.round(rng.lognormal(0.1, 0.5, n), 3),
            "sodium": np.round(rng.normal(139, 4, n), 2),
            "death": rng.integers(0, 2, n),
        }
    )


def old_leaking_command(frame: pd.DataFrame, id_column: str = "record_id") -> str:
    """The training command earlier versions stored for an EHRDiff model trained in the
    Generate page on ``frame`` (issue 28): the repr of the trainer's dataclass arguments, the
    training table included, built exactly as ``ui.training.plan`` built it then."""
    from dataclasses import asdict, is_dataclass

    from core.data.cohort import split_cohort
    from core.data.formats import NamedInput, load_cohort
    from core.data.records import ehr_table
    from core.ehrdiff.train import TrainConfig

    data = frame.to_csv(index=False).encode()
    cohort = load_cohort(
        "wide_table", {"table": NamedInput("cohort.csv", data)}, {"id_column": id_column}
    )
    train = ehr_table(cohort).subset(split_cohort(cohort, 0.2, 0).train)
    args = (train, TrainConfig(units=(256, 256), steps=600))
    settings = {type(a).__name__: asdict(a) for a in args if is_dataclass(a)}
    settings |= {k: str(v) for k, v in {"device": "cpu", "init_from": None}.items()}
    return f"Generate page, EHRDiff: {settings}"
