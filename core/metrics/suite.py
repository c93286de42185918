"""The review: every metric of one synthetic set against the real train / holdout split."""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from core.data.encoding import VectorEncoding
from core.data.records import EHRTable
from core.errors import ConfigError, CoreError
from core.metrics import fidelity, privacy, utility
from core.metrics.base import MetricResult

log = logging.getLogger(__name__)

MAX_RECORDS = 200_000
SUITE_VERSION = "1"


@dataclass(frozen=True)
class ReviewSettings:
    seed: int = 0
    mmd_max_records: int | None = None  # None = exact over all records
    bootstrap: int = 200
    subsample: int = (
        50_000  # larger sets are subsampled to this many records (stated in the report)
    )


@dataclass(frozen=True, eq=False)
class Review:
    name: str
    results: list[MetricResult]
    seconds: dict[str, float]
    fingerprint: str
    n_records: int
    subsampled_from: int | None
    skipped: dict[str, str] = field(default_factory=dict)

    def get(self, metric_id: str) -> MetricResult | None:
        """The result with this stable id (``MetricResult.id``), or None if not computed."""
        return next((r for r in self.results if r.id == metric_id), None)


def table_fingerprint(table: EHRTable) -> str:
    h = hashlib.sha256()
    frame = table.to_frame().drop(columns=["record_id"])
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    h.update("\x1f".join(map(str, frame.columns)).encode())
    return h.hexdigest()


def _cap(table: EHRTable, limit: int, seed: int) -> tuple[EHRTable, int | None]:
    if table.n_records <= limit:
        return table, None
    rng = np.random.default_rng(seed)
    return table.subset(np.sort(rng.choice(table.n_records, limit, replace=False))), table.n_records


def review(
    name: str,
    train: EHRTable,
    holdout: EHRTable,
    synth: EHRTable,
    *,
    encoding: VectorEncoding | None = None,
    settings: ReviewSettings = ReviewSettings(),
    callback: Callable[[int, int, str], None] | None = None,
) -> Review:
    """Compute the whole suite. ``encoding`` defaults to one fitted on ``train``; the synthetic set
    must have the same columns (a :class:`CohortError` names missing or unexpected ones)."""
    if synth.n_records < 2:
        raise ConfigError(f"'{name}' has {synth.n_records} record(s); the review needs at least 2.")
    if synth.n_records > MAX_RECORDS * 5:
        raise ConfigError(
            f"'{name}' has {synth.n_records:,} records; the review accepts at most {MAX_RECORDS * 5:,}."
        )
    enc = encoding or VectorEncoding.fit(train)
    synth, original = _cap(synth, settings.subsample, settings.seed)
    train_c, _ = _cap(train, settings.subsample, settings.seed)
    holdout_c, _ = _cap(holdout, settings.subsample, settings.seed)
    x_tr, x_ho, x_sy = enc.encode(train_c), enc.encode(holdout_c), enc.encode(synth)
    if np.isnan(x_sy).any():
        raise ConfigError(f"'{name}' encodes to NaN values; check its columns.")
    names = enc.dim_names
    binary = enc.binary_dims
    # Exact copies and NNDR need the same synthetic->train and holdout->train neighbours.
    neighbours = functools.cache(lambda: privacy.train_neighbours(x_tr, x_ho, x_sy))
    steps: list[tuple[str, Callable[[], MetricResult | list[MetricResult]]]] = [
        (
            "dimension-wise probability",
            lambda: fidelity.dimension_wise_probability(x_tr, x_sy, names),
        ),
        (
            "dimension-wise prediction",
            lambda: fidelity.dimension_wise_prediction(
                x_tr,
                x_sy,
                x_ho,
                names,
            ),
        ),
        (
            "MMD",
            lambda: fidelity.mmd(
                x_tr, x_sy, max_records=settings.mmd_max_records, seed=settings.seed
            ),
        ),
        ("correlation", lambda: fidelity.correlation_difference(x_tr, x_sy)),
    ]
    numeric_cols = [c.name for c in enc.columns if c.kind == "numeric"]
    if numeric_cols:
        steps.append(
            (
                "numeric marginals",
                lambda: fidelity.numeric_marginals(train_c.static, synth.static, numeric_cols),
            )
        )
    if train_c.static is not None and train_c.static.isna().any().any():
        cols = [c.name for c in enc.columns]
        steps.append(
            (
                "missingness",
                lambda: fidelity.missingness_agreement(train_c.static, synth.static, cols),
            )
        )
    if train_c.codes is not None:
        steps.append(
            (
                "codes per record",
                lambda: fidelity.codes_per_record(
                    train_c.codes.codes_per_record(), synth.codes.codes_per_record()
                ),
            )
        )
    if train_c.labels is not None and synth.labels is not None and holdout_c.labels is not None:

        def _tstr() -> list[MetricResult]:
            def xy(x: np.ndarray, t: EHRTable) -> tuple[np.ndarray, np.ndarray]:
                known = t.labels >= 0
                return x[known], t.labels[known]

            return utility.tstr(
                xy(x_tr, train_c),
                xy(x_sy, synth),
                xy(x_ho, holdout_c),
                n_boot=settings.bootstrap,
                seed=settings.seed,
            )

        steps.append(("utility (TSTR)", _tstr))
    steps += [
        (
            "membership inference",
            lambda: privacy.membership_inference(x_tr, x_ho, x_sy, seed=settings.seed),
        ),
        ("DCR", lambda: privacy.distance_to_closest_record(x_tr, x_ho, x_sy, seed=settings.seed)),
        ("exact copies", lambda: privacy.exact_copies(x_tr, x_ho, x_sy, neighbours())),
        ("NNDR", lambda: privacy.nearest_neighbour_distance_ratio(x_tr, x_ho, x_sy, neighbours())),
    ]
    known, sensitive = _attribute_split(x_tr, binary)
    if len(known) and len(sensitive):
        steps.append(
            (
                "attribute inference",
                lambda: privacy.attribute_inference(
                    x_tr, x_ho, x_sy, known=known, sensitive=sensitive, seed=settings.seed
                ),
            )
        )
    results: list[MetricResult] = []
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for i, (label, fn) in enumerate(steps):
        if callback is not None:
            callback(i, len(steps), label)
        start = time.perf_counter()
        try:
            out = fn()
        except CoreError as exc:
            skipped[label] = str(exc)
            continue
        seconds[label] = time.perf_counter() - start
        results.extend(out if isinstance(out, list) else [out])
    if callback is not None:
        callback(len(steps), len(steps), "done")
    log.info("reviewed %s: %d metrics in %.1fs", name, len(results), sum(seconds.values()))
    return Review(
        name, results, seconds, table_fingerprint(synth), synth.n_records, original, skipped
    )


def _attribute_split(x_train: np.ndarray, binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Attacker knows the more prevalent half of the 0/1 dimensions and infers up to 20 of the rest."""
    dims = np.flatnonzero(binary & (x_train.mean(axis=0) > 0))
    order = dims[np.argsort(-x_train[:, dims].mean(axis=0), kind="stable")]
    half = len(order) // 2
    return order[:half], order[half:][:20]


def summary_table(reviews: list[Review]) -> pd.DataFrame:
    """One row per metric, one column per synthetic set, plus the ideal value."""
    rows: dict[str, dict] = {}
    for rv in reviews:
        for r in rv.results:
            row = rows.setdefault(
                r.name,
                {
                    "metric": r.name,
                    "category": r.category,
                    "ideal": r.ideal,
                },
            )
            row[rv.name] = r.value
    return pd.DataFrame(list(rows.values()))


def best_column(row: pd.Series, set_names: list[str]) -> str | None:
    vals = {n: row[n] for n in set_names if n in row and pd.notna(row[n])}
    if not vals:
        return None
    return min(vals, key=lambda n: abs(vals[n] - row["ideal"]))


def settings_dict(settings: ReviewSettings) -> dict:
    return {**asdict(settings), "suite_version": SUITE_VERSION}
