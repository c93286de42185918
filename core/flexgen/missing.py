"""How FLEXGEN-EHR training treats records missing their static row or their series.

One choice for users (:data:`HANDLING`): a data-space variant, or the ``flexgen`` variant with a
latent alignment method (:mod:`core.flexgen.alignment`):

- ``knn``           the missing part imputed in data space from the k nearest records that have
                    both (the EHR-M-GAN treatment), then every record treated as complete;
- ``complete_case`` records missing either part left out;
- ``flexgen``       the missing part's latent imputed after the autoencoders, by the alignment.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
from sklearn.neighbors import NearestNeighbors

from core.errors import CohortError, ConfigError
from core.flexgen.alignment import METHODS

VARIANTS = ("flexgen", "complete_case", "knn")
DATA_VARIANTS = ("knn", "complete_case")
HANDLING = {
    "knn": "kNN imputation in data space (measured best)",
    **METHODS,
    "complete_case": "Complete-case (records missing a part left out)",
}

C = TypeVar("C")  # a FlexGenConfig (core.flexgen.train), which imports this module


def missing_part_handling(config: C, choice: str) -> C:
    """``config`` with a choice of :data:`HANDLING`: ``knn`` / ``complete_case`` as variants, an
    alignment method as the flexgen variant imputing with it."""
    if choice in DATA_VARIANTS:
        return replace(config, variant=choice)  # type: ignore[type-var]
    if choice not in METHODS:
        raise ConfigError(
            f"unknown missing-part handling '{choice}'; expected one of {tuple(HANDLING)}"
        )
    alignment = replace(config.alignment, method=choice)  # type: ignore[attr-defined]
    return replace(config, variant="flexgen", alignment=alignment)  # type: ignore[type-var]


def training_rows(
    has_s: np.ndarray, has_t: np.ndarray, variant: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(has static, has series, rows trained on) as the variant treats missing parts: the
    data-space variants see every training record as complete; complete-case keeps only those."""
    rows = np.flatnonzero(has_s & has_t) if variant == "complete_case" else np.arange(len(has_s))
    if variant != "flexgen":
        has_s = has_t = np.ones(len(has_s), bool)
    return has_s, has_t, rows


def _temporal_profile(x_t: np.ndarray) -> np.ndarray:
    """Per variable: mean scaled value where observed (0.5 if never) and share of hours observed."""
    d = x_t.shape[-1] // 2
    values, mask = x_t[..., :d], x_t[..., d:]
    seen = mask.sum(axis=1)
    mean = np.where(seen > 0, (values * mask).sum(axis=1) / np.maximum(seen, 1e-9), 0.5)
    return np.concatenate([mean, mask.mean(axis=1)], axis=1)


def knn_impute(
    x_s: np.ndarray, x_t: np.ndarray, has_s: np.ndarray, has_t: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fill each missing modality with the mean of its k nearest complete records, searched on
    the modality the record has (static vector, or the per-variable temporal profile). The
    temporal mean keeps a fractional mask, which then weights the value error."""
    complete = np.flatnonzero(has_s & has_t)
    if len(complete) == 0:
        raise CohortError("kNN imputation needs records with both static and temporal data")
    k = min(k, len(complete))
    x_s, x_t = x_s.copy(), x_t.copy()
    lacks_s = np.flatnonzero(~has_s)
    if len(lacks_s):
        nn = NearestNeighbors(n_neighbors=k).fit(_temporal_profile(x_t[complete]))
        idx = complete[nn.kneighbors(_temporal_profile(x_t[lacks_s]), return_distance=False)]
        x_s[lacks_s] = x_s[idx].mean(axis=1)
    lacks_t = np.flatnonzero(~has_t)
    if len(lacks_t):
        nn = NearestNeighbors(n_neighbors=k).fit(x_s[complete])
        idx = complete[nn.kneighbors(x_s[lacks_t], return_distance=False)]
        d = x_t.shape[-1] // 2
        nb = x_t[idx]  # [m, k, T, 2D]
        mask = nb[..., d:].mean(axis=1)
        values = (nb[..., :d] * nb[..., d:]).sum(axis=1) / np.maximum(nb[..., d:].sum(axis=1), 1e-9)
        x_t[lacks_t] = np.concatenate([values, mask], axis=-1)
    return x_s, x_t


def note(training: dict, alignment: Any | None) -> str | None:
    """One line on how the records missing a part were treated (the training panel shows it);
    ``training``: the model's training facts, ``alignment``: the fitted alignment, if any."""
    lacks_s = training["records"] - training["records_with_static"]
    lacks_t = training["records"] - training["records_with_temporal"]
    if alignment is not None:
        a = alignment
        return (
            f"{lacks_s:,} missing static row(s) and {lacks_t:,} missing series imputed in "
            f"latent space by {METHODS[a.method].lower()} ({a.n_pairs:,} records with both "
            f"parts known; {a.seconds:.1f} s)."
        )
    variant = training["variant"]
    if variant == "complete_case":
        return f"Complete-case: trained on the {training['records']:,} records with both parts."
    if variant == "knn":
        return "Missing parts filled from the nearest records with both parts (kNN)."
    return None
