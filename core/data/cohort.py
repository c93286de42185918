"""The cohort model every loader returns and every pipeline consumes.

A cohort has N records (ICU stays, admissions or patients, one row each) and any of:
typed static features, a temporal tensor on a regular grid with an observation mask, a binary
code matrix with its vocabulary, and a label. ``patient_ids`` groups records of one patient so
that train/holdout splits never put one patient on both sides.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

from core.errors import CohortError, ConfigError

FeatureKind = Literal["binary", "categorical", "numeric"]
FEATURE_KINDS: tuple[FeatureKind, ...] = ("binary", "categorical", "numeric")


@dataclass(frozen=True)
class FeatureSpec:
    """One static feature. Binary features hold 0/1/NaN; categorical ones hold level labels."""

    name: str
    kind: FeatureKind
    unit: str | None = None
    categories: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise CohortError(f"Feature '{self.name}': unknown kind {self.kind!r}.")


@dataclass(frozen=True, eq=False)
class TemporalData:
    """Values ``[N, T, D]`` (float32, NaN where unobserved) and mask ``[N, T, D]`` (bool)."""

    values: np.ndarray
    mask: np.ndarray
    variables: tuple[str, ...]
    units: tuple[str | None, ...]
    step_hours: float

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.shape != self.mask.shape:
            raise CohortError(
                f"Temporal values {self.values.shape} and mask {self.mask.shape} must be equal [N, T, D]."
            )
        if self.values.shape[2] != len(self.variables) or len(self.units) != len(self.variables):
            raise CohortError("Temporal variables/units do not match the tensor's last dimension.")
        if self.mask.dtype != np.bool_:
            raise CohortError("Temporal mask must be boolean.")

    @property
    def n_steps(self) -> int:
        return int(self.values.shape[1])

    def subset(self, index: np.ndarray) -> TemporalData:
        return replace(self, values=self.values[index], mask=self.mask[index])


@dataclass(frozen=True, eq=False)
class CodeMatrix:
    """Binary record x code matrix, stored sparse (CSR, uint8)."""

    matrix: sp.csr_array
    vocabulary: tuple[str, ...]
    system: str
    granularity: str

    def __post_init__(self) -> None:
        if self.matrix.shape[1] != len(self.vocabulary):
            raise CohortError("Code matrix width does not match its vocabulary.")
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise CohortError("Code vocabulary has duplicate entries.")

    def dense(self, dtype: type = np.float32) -> np.ndarray:
        return self.matrix.toarray().astype(dtype, copy=False)

    def prevalence(self) -> np.ndarray:
        """Share of records carrying each code."""
        n = max(self.matrix.shape[0], 1)
        return np.asarray(self.matrix.sum(axis=0)).ravel() / n

    def codes_per_record(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=1)).ravel()

    def subset(self, index: np.ndarray) -> CodeMatrix:
        return replace(self, matrix=sp.csr_array(self.matrix[index]))


@dataclass(frozen=True)
class CohortOrigin:
    """Where a cohort was loaded from, as the training commands take it: the format id, the
    file name per input slot and the loader options. Names only, never content: model cards and
    equivalent command lines state it instead of the data."""

    format_id: str
    files: tuple[tuple[str, str], ...] = ()  # (slot, file name)
    options: tuple[tuple[str, object], ...] = ()  # (key, value) as the loader took them


@dataclass(frozen=True, eq=False)
class Cohort:
    """N records with any combination of static, temporal and code data plus an optional label."""

    name: str
    record_ids: np.ndarray
    patient_ids: np.ndarray
    static: pd.DataFrame | None = None
    static_features: tuple[FeatureSpec, ...] = ()
    temporal: TemporalData | None = None
    codes: CodeMatrix | None = None
    labels: np.ndarray | None = None  # int64, -1 = unknown
    label_name: str | None = None
    label_classes: tuple[str, ...] = ()
    source: str = ""
    notes: tuple[str, ...] = field(default=())
    origin: CohortOrigin | None = None  # set by core.data.formats.load_cohort

    def __post_init__(self) -> None:
        n = len(self.record_ids)
        if n == 0:
            raise CohortError(f"Cohort '{self.name}' has no records.")
        if len(self.patient_ids) != n:
            raise CohortError("patient_ids and record_ids differ in length.")
        ids = pd.Index(self.record_ids)
        if ids.has_duplicates:
            dup = ids[ids.duplicated()].unique()[:5].tolist()
            raise CohortError(f"Duplicate record ids: {', '.join(map(str, dup))}.")
        if self.static is not None:
            if len(self.static) != n:
                raise CohortError("Static table rows do not match the number of records.")
            names = [f.name for f in self.static_features]
            if list(self.static.columns) != names:
                raise CohortError("Static columns do not match their feature specs.")
        if self.temporal is not None and self.temporal.values.shape[0] != n:
            raise CohortError("Temporal tensor does not match the number of records.")
        if self.codes is not None and self.codes.matrix.shape[0] != n:
            raise CohortError("Code matrix does not match the number of records.")
        if self.labels is not None:
            if self.labels.shape != (n,):
                raise CohortError("Labels must be one value per record.")
            if not np.issubdtype(self.labels.dtype, np.integer):
                raise CohortError("Labels must be integer class indices (-1 = unknown).")
            if self.label_classes and self.labels.max() >= len(self.label_classes):
                raise CohortError("Label index outside label_classes.")
        if self.static is None and self.temporal is None and self.codes is None:
            raise CohortError(f"Cohort '{self.name}' has no static, temporal or code data.")

    # --- shape ---------------------------------------------------------------------------------
    @property
    def n_records(self) -> int:
        return len(self.record_ids)

    @property
    def n_patients(self) -> int:
        return int(pd.Index(self.patient_ids).nunique())

    @property
    def modalities(self) -> tuple[str, ...]:
        parts = []
        if self.static is not None:
            parts.append("static")
        if self.temporal is not None:
            parts.append("temporal")
        if self.codes is not None:
            parts.append("codes")
        return tuple(parts)

    def subset(self, index: np.ndarray, name: str | None = None) -> Cohort:
        """Records at integer positions ``index`` (order kept)."""
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            name=name or self.name,
            record_ids=self.record_ids[index],
            patient_ids=self.patient_ids[index],
            static=None if self.static is None else self.static.iloc[index].reset_index(drop=True),
            temporal=None if self.temporal is None else self.temporal.subset(index),
            codes=None if self.codes is None else self.codes.subset(index),
            labels=None if self.labels is None else self.labels[index],
        )

    def fingerprint(self) -> str:
        """sha256 of the cohort's content, for manifests and cache keys (not of its name)."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        # Computed once per (immutable) cohort: pages ask for it on every rerun.
        h = hashlib.sha256()
        h.update("\x1f".join(map(str, self.record_ids)).encode())
        h.update("\x1f".join(map(str, self.patient_ids)).encode())
        if self.static is not None:
            h.update(pd.util.hash_pandas_object(self.static, index=False).to_numpy().tobytes())
        if self.temporal is not None:
            h.update(np.ascontiguousarray(self.temporal.values).tobytes())
            h.update(np.packbits(self.temporal.mask).tobytes())
        if self.codes is not None:
            coo = self.codes.matrix.tocoo()
            h.update(
                np.ascontiguousarray(coo.row).tobytes() + np.ascontiguousarray(coo.col).tobytes()
            )
            h.update("\x1f".join(self.codes.vocabulary).encode())
        if self.labels is not None:
            h.update(self.labels.astype(np.int64).tobytes())
        return h.hexdigest()


@dataclass(frozen=True, eq=False)
class CohortSplit:
    """Integer record positions of the train and holdout parts (both sorted)."""

    train: np.ndarray
    holdout: np.ndarray
    seed: int
    holdout_fraction: float
    stratified: bool
    n_train_patients: int
    n_holdout_patients: int

    def summary(self) -> dict:
        """What a report or release manifest states about the split; ``fingerprint`` (sha256
        of both position lists) tells two splits of the same sizes apart."""
        h = hashlib.sha256(np.asarray(self.train, dtype=np.int64).tobytes())
        h.update(b"|" + np.asarray(self.holdout, dtype=np.int64).tobytes())
        return {
            "holdout_fraction": float(self.holdout_fraction),
            "seed": int(self.seed),
            "train": len(self.train),
            "holdout": len(self.holdout),
            "fingerprint": h.hexdigest(),
        }


def split_cohort(cohort: Cohort, holdout_fraction: float = 0.2, seed: int = 0) -> CohortSplit:
    """Deterministic patient-level split, stratified on the label when there is one.

    All records of a patient go to the same side. A patient's stratum is the highest label among
    their records (so a patient who ever died counts as a death). Stratification is dropped, and
    the split says so, when a class has fewer than two patients.
    """
    return split_patients(cohort.patient_ids, cohort.labels, holdout_fraction, seed)


def split_patients(
    patient_ids: np.ndarray, labels: np.ndarray | None, holdout_fraction: float, seed: int
) -> CohortSplit:
    """:func:`split_cohort` over any records given by their patient ids (and labels)."""
    if not 0.0 < holdout_fraction < 1.0:
        raise ConfigError(f"Holdout fraction must be between 0 and 1, got {holdout_fraction}.")
    patients, inverse = np.unique(np.asarray(patient_ids).astype(str), return_inverse=True)
    if len(patients) < 2:
        raise CohortError("A train/holdout split needs at least two patients.")
    # At least one patient on each side, however small the cohort.
    n_holdout = min(max(round(len(patients) * holdout_fraction), 1), len(patients) - 1)
    strata = None
    if labels is not None:
        patient_label = np.full(len(patients), -1, dtype=np.int64)
        np.maximum.at(patient_label, inverse, np.asarray(labels).astype(np.int64))
        counts = np.bincount(patient_label + 1)
        counts = counts[counts > 0]
        if (
            counts.min() >= 2
            and len(counts) <= n_holdout
            and len(counts) <= len(patients) - n_holdout
        ):
            strata = patient_label
    rng_state = np.random.RandomState(seed)  # sklearn's documented seeding; local, not global
    train_p, holdout_p = train_test_split(
        np.arange(len(patients)), test_size=n_holdout, stratify=strata, random_state=rng_state
    )
    in_holdout = np.zeros(len(patients), dtype=bool)
    in_holdout[holdout_p] = True
    record_holdout = in_holdout[inverse]
    return CohortSplit(
        train=np.flatnonzero(~record_holdout),
        holdout=np.flatnonzero(record_holdout),
        seed=seed,
        holdout_fraction=holdout_fraction,
        stratified=strata is not None,
        n_train_patients=len(train_p),
        n_holdout_patients=len(holdout_p),
    )
