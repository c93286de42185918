"""Files written whole or not at all: the data goes into a new file beside the target, is
fsynced, then renamed onto it (and the rename made durable). ``point`` names the moment between
the write and the rename for the crash tests (core.faults)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from core import faults


def write_atomically(path: Path, data: bytes, mode: int = 0o644, point: str = "") -> None:
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if point:
            faults.point(point)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    except OSError:  # not every file system syncs a folder
        pass
    finally:
        os.close(dir_fd)
