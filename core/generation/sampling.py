"""Label checks and draws, chunked sampling and synthetic ids, shared by the generator families."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from core.data.cohort import Cohort
from core.errors import ConfigError
from core.generation.synthetic import SyntheticSet
from core.progress import ProgressCallback


class SyntheticGenerator(Protocol):
    """What a page needs of any model that makes synthetic cohorts."""

    family: str  # the manifest's family id
    model_id: str
    manifest: Any
    class_prior: tuple[float, ...]

    @property
    def n_classes(self) -> int: ...

    def check_compatible(self, cohort: Cohort) -> None:
        """Raise a :class:`core.errors.CohortError` naming what of ``cohort`` the model cannot
        compare against (columns, grid); return when its records can be compared."""

    def generate(self, settings: Any, callback: ProgressCallback | None = None) -> SyntheticSet: ...


def validate_label_settings(
    n_classes: int, guidance: float, label_mix: tuple[float, ...] | None
) -> None:
    """Guidance scale and label mix of a (possibly) label-conditional generator."""
    if n_classes == 0 and (guidance != 1.0 or label_mix is not None):
        raise ConfigError(
            "Guidance and label mix need a label-conditional model; this model has no label."
        )
    if not 0.0 <= guidance <= 10.0:
        raise ConfigError(f"Guidance scale must be between 0 and 10, got {guidance}.")
    if label_mix is not None:
        mix = np.asarray(label_mix, dtype=float)
        if len(mix) != n_classes or (mix < 0).any() or not np.isclose(mix.sum(), 1.0):
            raise ConfigError(f"Label mix must be {n_classes} non-negative shares summing to 1.")


def draw_labels(
    n: int,
    n_classes: int,
    label_mix: tuple[float, ...] | None,
    class_prior: tuple[float, ...],
    generator: torch.Generator,
) -> torch.Tensor | None:
    """``n`` class labels drawn from ``label_mix`` (or the training shares); None without labels."""
    if n_classes == 0:
        return None
    mix = np.asarray(label_mix or class_prior, dtype=np.float64)
    return torch.multinomial(
        torch.as_tensor(mix / mix.sum()), n, replacement=True, generator=generator
    )


@dataclass(frozen=True)
class Chunk:
    start: int
    stop: int
    callback: ProgressCallback | None  # reports this chunk's steps on the whole run's count

    def __len__(self) -> int:
        return self.stop - self.start


def chunks(n: int, size: int, steps: int, callback: ProgressCallback | None) -> list[Chunk]:
    """``n`` records in batches of at most ``size``; each batch's ``steps`` sampler steps are
    reported to ``callback`` as one count over all batches."""
    starts = range(0, n, size)
    total = len(starts) * steps

    def relay(k: int) -> ProgressCallback | None:
        if callback is None:
            return None
        return lambda i, _n: callback(k * steps + i, total)

    return [Chunk(lo, min(lo + size, n), relay(k)) for k, lo in enumerate(starts)]


def synthetic_ids(n: int) -> np.ndarray:
    return np.asarray([f"syn-{i:06d}" for i in range(n)], dtype=object)
