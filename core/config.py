"""One convention for model configs: a frozen dataclass that round-trips through JSON.

Tuples are written as JSON lists and read back as tuples wherever the field is annotated as a
tuple, nested config dataclasses are read back as themselves; unknown keys raise ``TypeError`` (callers turn it into a ``CheckpointError``), so a
manifest written by another version is refused rather than half-read.
"""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, fields, is_dataclass
from typing import Any, TypeVar

C = TypeVar("C", bound="JSONConfig")


def _is_tuple(hint: Any) -> bool:
    if typing.get_origin(hint) is tuple or hint is tuple:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_tuple(arg) for arg in typing.get_args(hint))
    return False


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class JSONConfig:
    """Mixin for frozen dataclasses: ``to_json()`` and ``from_json(raw)``."""

    def to_json(self) -> dict:
        return _plain(asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[C], raw: dict) -> C:
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        kwargs = {k: _read(hints[k], v) if k in known else v for k, v in raw.items()}
        return cls(**kwargs)


def _element_hint(hint: Any) -> Any:
    """``tuple[X, ...]`` (or ``tuple[X, ...] | None``) -> ``X``; ``Any`` when unknown."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if _is_tuple(a))
    args = typing.get_args(hint)
    return args[0] if args else Any


def _read(hint: Any, value: Any) -> Any:
    """A JSON value back as the annotated type: tuples, and nested config dataclasses."""
    if isinstance(value, list) and _is_tuple(hint):
        return tuple(_read(_element_hint(hint), v) for v in value)
    if isinstance(value, dict) and is_dataclass(hint):
        return hint.from_json(value) if issubclass(hint, JSONConfig) else hint(**value)
    return value
