"""The progress-callback conventions of the core (pages wire them to ``st.progress``)."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]
"""``callback(done, total)`` after each unit of work (a sampler step, a file, a pair)."""

StepCallback = Callable[[int, int, float], None]
"""``callback(step, total, loss)`` after each optimiser step of a training loop."""
