"""What depends on the real split alone, computed once and shared by every set reviewed against it.

A review of k sets fits the train-on-real classifiers of TSTR and the real-vs-real detectors k
times, though their inputs are the same each time. They are kept here, keyed by a digest of
their inputs' contents (each set is encoded afresh, so the arrays are equal but not the same
objects), in a small store shared by the server's sessions. Only model outputs are kept (holdout
scores, an AUROC and its interval), never records.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")

MAX_ENTRIES = 32
_STORE: OrderedDict[str, object] = OrderedDict()
_LOCK = threading.Lock()


def digest(*parts: object) -> str:
    """sha256 over arrays (shape, dtype and bytes) and the ``repr`` of everything else."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"{a.shape}{a.dtype.str}".encode())
            h.update(a.data)
        else:
            h.update(repr(part).encode())
        h.update(b"\x1f")
    return h.hexdigest()


def shared(key: str, compute: Callable[..., T], *args: object) -> T:
    """``compute(*args)``, kept under ``key``; computed outside the lock, so two sessions asking
    at once may both compute it (the results are equal)."""
    with _LOCK:
        if key in _STORE:
            _STORE.move_to_end(key)
            return _STORE[key]  # type: ignore[return-value]
    value = compute(*args)
    with _LOCK:
        _STORE[key] = value
        while len(_STORE) > MAX_ENTRIES:
            _STORE.popitem(last=False)
    return value


def clear() -> None:
    with _LOCK:
        _STORE.clear()
