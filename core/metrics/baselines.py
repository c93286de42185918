"""Reference generators a data steward compares a model against."""

from __future__ import annotations

import numpy as np

from core.data.records import EHRTable
from core.encoding.vectors import VectorEncoding


def independent_marginals(
    train: EHRTable, n: int, seed: int = 0, encoding: VectorEncoding | None = None
) -> tuple[EHRTable, np.ndarray]:
    """Each column resampled independently from the training records. Keeps every marginal
    (with its missingness), destroys correlations between columns: a floor any generative model
    should beat on correlations and utility."""
    enc = encoding or VectorEncoding.fit(train)
    x = enc.encode(train)
    rng = np.random.default_rng(seed)
    out = np.empty((n, x.shape[1]), dtype=np.float32)
    # Dimensions that must move together: a one-hot group, and the columns sharing a missing
    # indicator together with that indicator (a value without its missingness flag is meaningless).
    units: dict[object, list[int]] = {}
    for c in enc.columns:
        key = ("missing", c.missing_dim) if c.missing_dim is not None else ("column", c.name)
        units.setdefault(key, []).extend(range(c.start, c.start + c.width))
        if c.missing_dim is not None:
            units[key].append(c.missing_dim)
    covered = {d for dims in units.values() for d in dims}
    for j in range(x.shape[1]):
        if j not in covered:
            units[("dim", j)] = [j]
    for dims in units.values():
        dims = sorted(set(dims))
        out[:, dims] = x[rng.integers(0, len(x), n)][:, dims]
    labels = None
    if train.labels is not None:
        known = train.labels[train.labels >= 0]
        labels = known[rng.integers(0, len(known), n)]
    ids = np.asarray([f"marg-{i:06d}" for i in range(n)], dtype=object)
    return enc.decode(out, ids, labels), out
