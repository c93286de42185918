"""Typed errors: the only exceptions pages are expected to catch and show to a user.

Every message names what was wrong (file, column, line, value) and what was expected, in words a
clinician or data steward can act on.
"""

from __future__ import annotations


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
