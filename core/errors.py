"""Typed errors: the only exceptions pages are expected to catch and show to a user.

Every message names what was wrong (file, column, line, value) and what was expected, in words a
clinician or data steward can act on.
"""

from __future__ import annotations

import errno


class CoreError(Exception):
    """Base class of every error the core raises on purpose."""


class CohortError(CoreError):
    """Input data could not be read into a cohort (format, content or size problem)."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        where = []
        if source:
            where.append(f"'{source}'")
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column '{column}'")
        self.source, self.line, self.column = source, line, column
        self.detail = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class CheckpointError(CoreError):
    """A checkpoint is missing, tampered with, of an unknown format or does not fit its config."""


class DeviceError(CoreError):
    """A requested compute device is not available on this machine."""


class RegistryError(CoreError):
    """Unknown or duplicate model / metric identifier."""


class ConfigError(CoreError):
    """Invalid user-chosen settings (sizes, steps, fractions...)."""


class ImageError(CoreError):
    """An uploaded image could not be read as a single-frame chest radiograph."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        self.detail = message
        super().__init__(f"'{source}': {message}" if source else message)


class StorageError(CoreError):
    """A file or database could not be written or read: disk full, file too large, read-only
    file system, permission denied. The message names the path and what to do."""


_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space (or move the folder) and try again",
    errno.EDQUOT: "the disk quota is used up: free some space and try again",
    errno.EFBIG: "the file is larger than this system allows: raise the file-size limit or "
    "write to another disk",
    errno.EROFS: "the file system is read-only: point the setting at a writable folder",
    errno.EACCES: "permission denied: give this server's user write access to it, or choose "
    "another folder",
    errno.EPERM: "operation not permitted: give this server's user write access to it, or "
    "choose another folder",
}


def storage_error(exc: OSError, path: object, what: str) -> StorageError:
    """``exc`` as a :class:`StorageError`: what failed, where, why and what to do."""
    advice = _ADVICE.get(exc.errno or 0) or f"{exc.strerror or exc}; check the disk and try again"
    return StorageError(f"{what} failed at {path}: {advice}.")
