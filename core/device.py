"""Compute device selection, dtype policy and seeded random generators.

Order of preference is cuda > mps > cpu. ``CSS_DEVICE`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``,
``mps``) overrides the automatic choice; pages pass the user's choice as ``preference``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from core.errors import DeviceError

DEVICE_ENV_VAR = "CSS_DEVICE"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Device strings usable on this machine, best first."""
    devices = (
        [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    if _mps_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def select_device(preference: str | None = None) -> torch.device:
    """Resolve ``preference`` (or ``$CSS_DEVICE``, or ``auto``) to an available ``torch.device``.

    Raises :class:`DeviceError` when an explicitly requested device is not available, rather than
    silently falling back: a user who asked for a GPU should know they are not getting one.
    """
    choice = (preference or os.environ.get(DEVICE_ENV_VAR) or "auto").strip().lower()
    if choice == "auto":
        return torch.device(available_devices()[0])
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"Device '{choice}' was requested but no CUDA GPU is available.")
        dev = torch.device(choice)
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"Device '{choice}' was requested but only {torch.cuda.device_count()} GPU(s) exist."
            )
        return torch.device("cuda", index)
    if choice == "mps":
        if not _mps_available():
            raise DeviceError("Device 'mps' was requested but Apple MPS is not available.")
        return torch.device("mps")
    raise DeviceError(f"Unknown device '{choice}'; expected one of {', '.join(DEVICE_CHOICES)}.")


@dataclass(frozen=True)
class DtypePolicy:
    """Which dtypes a model uses on a device.

    Parameters and sampling state stay float32 everywhere (diffusion samplers accumulate error in
    half precision); ``autocast`` is the reduced dtype allowed for the network's matmuls, or None.
    """

    param: torch.dtype
    autocast: torch.dtype | None


def dtype_policy(device: torch.device) -> DtypePolicy:
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return DtypePolicy(param=torch.float32, autocast=torch.bfloat16)
    return DtypePolicy(param=torch.float32, autocast=None)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator seeded with ``seed`` on ``device``; never touches the global RNG."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DeviceError(f"Seed must be a non-negative integer, got {seed!r}.")
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(seed)
    return gen


_CONSTRUCTION = threading.Lock()


@contextmanager
def seeded_construction(seed: int) -> Iterator[None]:
    """Initialise modules from ``torch.manual_seed(seed)`` without racing other threads.

    Layer initialisers draw from torch's global generator. Two trainings started at once (the
    app runs two) would interleave their draws and neither would be reproducible; here the
    global generator is seeded, used by this block alone and restored, under one lock. Anything
    random after construction must use an explicit generator."""
    with _CONSTRUCTION:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.random.set_rng_state(state)


class GlobalStream:
    """torch's global generator as one training's private stream, for what cannot take an
    explicit generator (dropout draws from the global one).

    Inside :meth:`active` the global generator (and the device's, on CUDA) holds this stream's
    state, starting where ``torch.manual_seed(seed)`` would; on leaving, the stream keeps its
    state and the global one gets its own back, under the construction lock. So a training draws
    exactly what a global seed would give it, and no other training's draws interleave."""

    def __init__(self, seed: int, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        self._cpu = make_generator(seed).get_state()
        self._cuda: torch.Tensor | None = None
        self._index = 0
        if device.type == "cuda":
            self._index = device.index if device.index is not None else torch.cuda.current_device()
            self._cuda = make_generator(seed, torch.device("cuda", self._index)).get_state()

    @contextmanager
    def active(self) -> Iterator[None]:
        with _CONSTRUCTION:
            saved = torch.random.get_rng_state()
            torch.random.set_rng_state(self._cpu)
            saved_cuda = None
            if self._cuda is not None:
                saved_cuda = torch.cuda.get_rng_state(self._index)
                torch.cuda.set_rng_state(self._cuda, self._index)
            try:
                yield
            finally:
                self._cpu = torch.random.get_rng_state()
                torch.random.set_rng_state(saved)
                if saved_cuda is not None:
                    self._cuda = torch.cuda.get_rng_state(self._index)
                    torch.cuda.set_rng_state(saved_cuda, self._index)


def describe_device(device: torch.device) -> str:
    """One human-readable line for the landing page and sidebars."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"GPU {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"
