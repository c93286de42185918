"""The review: every metric of one synthetic set against the real train / holdout split."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from core.data.cohort import CohortSplit
from core.data.records import EHRTable
from core.encoding.vectors import VectorEncoding
from core.errors import ConfigError, CoreError
from core.metrics.base import MetricResult
from core.metrics.specs import METRICS, ReviewInputs, SequenceInputs

log = logging.getLogger(__name__)

MAX_RECORDS = 200_000
SUITE_VERSION = "2"  # 2: every training patient an attack target (issue #30)


@dataclass(frozen=True)
class ReviewSettings:
    seed: int = 0
    mmd_max_records: int | None = None  # None = all records (by blocks above 5,000)
    bootstrap: int = 200
    subsample: int = (
        50_000  # larger sets are subsampled to this many records (stated in the report)
    )


@dataclass(frozen=True)
class ReviewKey:
    """What a review reviewed: the real cohort (its fingerprint), its train/holdout split
    (:meth:`CohortSplit.summary` as sorted pairs, so the key is hashable), the sha256 of the
    file that would be released, and the settings. A release names the same three; it is
    refused when they differ (:func:`core.release.gate.binding_problems`)."""

    cohort_fingerprint: str
    split: tuple[tuple[str, object], ...]
    synthetic_sha256: str
    settings: ReviewSettings

    @classmethod
    def of(
        cls,
        cohort_fingerprint: str,
        split: CohortSplit,
        synthetic_sha256: str,
        settings: ReviewSettings,
    ) -> ReviewKey:
        return cls(
            cohort_fingerprint, tuple(sorted(split.summary().items())), synthetic_sha256, settings
        )

    def as_dict(self) -> dict:
        """The key as a release manifest records it (JSON)."""
        return {
            "cohort_fingerprint": self.cohort_fingerprint,
            "split": dict(self.split),
            "synthetic_sha256": self.synthetic_sha256,
            "settings": settings_dict(self.settings),
        }


@dataclass(frozen=True, eq=False)
class Review:
    name: str
    results: list[MetricResult]
    seconds: dict[str, float]
    fingerprint: str
    n_records: int
    subsampled_from: int | None
    skipped: dict[str, str] = field(default_factory=dict)  # spec id -> why not computed
    key: ReviewKey | None = None  # what was reviewed; None: not bound, cannot be released

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
    sequences: SequenceInputs | None = None,
    key: ReviewKey | None = None,
) -> Review:
    """Compute the whole suite. ``encoding`` defaults to one fitted on ``train``; the synthetic set
    must have the same columns (a :class:`CohortError` names missing or unexpected ones).
    ``sequences`` (the visit sequences behind patient-level tables) adds the sequence metrics.
    ``key``: what is reviewed (cohort, split, released file, ``settings``), carried by the
    result so that a release can be checked against it."""
    if key is not None and key.settings != settings:
        raise ConfigError("The review key names other settings than the review runs with.")
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
    inputs = ReviewInputs(
        train_c,
        holdout_c,
        synth,
        enc,
        x_tr,
        x_ho,
        x_sy,
        settings.seed,
        settings.bootstrap,
        settings.mmd_max_records,
        sequences,
    )
    steps = [spec for spec in METRICS if spec.applies(inputs)]
    results: list[MetricResult] = []
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for i, spec in enumerate(steps):
        if callback is not None:
            callback(i, len(steps), spec.title)
        start = time.perf_counter()
        try:
            out = spec.compute(inputs)
        except CoreError as exc:
            skipped[spec.id] = str(exc)
            continue
        seconds[spec.id] = time.perf_counter() - start
        results.extend(replace(r, spec=spec.id) for r in (out if isinstance(out, list) else [out]))
    if callback is not None:
        callback(len(steps), len(steps), "done")
    log.info("reviewed %s: %d metrics in %.1fs", name, len(results), sum(seconds.values()))
    return Review(
        name, results, seconds, table_fingerprint(synth), synth.n_records, original, skipped, key
    )


def summary_table(reviews: list[Review]) -> pd.DataFrame:
    """One row per metric, one column per synthetic set, plus the ideal value; the metric's
    stable ``id`` and its ``spec`` id come last."""
    rows: dict[str, dict] = {}
    for rv in reviews:
        for r in rv.results:
            row = rows.setdefault(
                r.id, {"metric": r.name, "category": r.category, "ideal": r.ideal}
            )
            row[rv.name] = r.value
            row |= {"id": r.id, "spec": r.spec}
    frame = pd.DataFrame(list(rows.values()))
    if frame.empty:
        return frame
    return frame[[c for c in frame.columns if c not in ("id", "spec")] + ["id", "spec"]]


def best_column(row: pd.Series, set_names: list[str]) -> str | None:
    vals = {n: row[n] for n in set_names if n in row and pd.notna(row[n])}
    if not vals:
        return None
    return min(vals, key=lambda n: abs(vals[n] - row["ideal"]))


def settings_dict(settings: ReviewSettings) -> dict:
    return {**asdict(settings), "suite_version": SUITE_VERSION}
