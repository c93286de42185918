"""Visit-sequence cohorts: patients with ordered visits, each with a gap since the previous visit
and a set of codes per modality (diagnoses, procedures, medications, admission diagnoses, ...).

Storage is flat: one row per visit (``visit_patient``, ``gap_days``) and one row per distinct
(visit, modality, code) event. A gap is NaN where the source cannot tell it (eICU across hospital
stays); the first visit of a patient has gap 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data.cohort import CodeMatrix, CohortOrigin, CohortSplit, split_patients
from core.data.records import EHRTable
from core.errors import CohortError

MEDS_BASE_TIME = datetime(2000, 1, 1)  # synthetic timelines start here in MEDS exports
VISIT_MARKER = "VISIT"  # one MEDS row per visit, so visits without codes survive a round trip
EVENT_COLUMNS = ("visit", "modality", "code")


@dataclass(frozen=True, eq=False)
class VisitCohort:
    name: str
    patient_ids: np.ndarray  # (P,) str
    visit_patient: np.ndarray  # (V,) int index into patient_ids; grouped by patient, in order
    gap_days: np.ndarray  # (V,) float; 0 for a first visit, NaN when unknown
    events: pd.DataFrame  # visit (int), modality (str), code (str); no duplicates
    modalities: tuple[str, ...]
    labels: np.ndarray | None = None  # (P,) int64, -1 = unknown
    label_name: str | None = None
    label_classes: tuple[str, ...] = ()
    source: str = ""
    notes: tuple[str, ...] = field(default=())
    origin: CohortOrigin | None = None  # set by core.data.formats.load_cohort

    def __post_init__(self) -> None:
        n_p, n_v = len(self.patient_ids), len(self.visit_patient)
        if n_p == 0 or n_v == 0:
            raise CohortError(f"Visit cohort '{self.name}' has no patients or no visits.")
        if len(self.gap_days) != n_v:
            raise CohortError("gap_days and visit_patient differ in length.")
        vp = np.asarray(self.visit_patient)
        if (np.diff(vp) < 0).any() or vp.min() < 0 or vp.max() >= n_p:
            raise CohortError("Visits must be grouped by patient, in patient order.")
        if len(np.unique(vp)) != n_p:
            raise CohortError("Every patient needs at least one visit.")
        if pd.Index(self.patient_ids).has_duplicates:
            raise CohortError("Duplicate patient ids in a visit cohort.")
        if list(self.events.columns[:3]) != list(EVENT_COLUMNS):
            raise CohortError(f"Visit events need the columns {EVENT_COLUMNS}.")
        if self.labels is not None and len(self.labels) != n_p:
            raise CohortError("Labels must be one per patient.")

    # --- shape ---------------------------------------------------------------------------------
    @property
    def n_patients(self) -> int:
        return len(self.patient_ids)

    @property
    def n_visits(self) -> int:
        return len(self.visit_patient)

    def visits_per_patient(self) -> np.ndarray:
        return np.bincount(self.visit_patient, minlength=self.n_patients)

    def visit_index(self) -> np.ndarray:
        """Position of each visit within its patient's sequence (0 = first visit)."""
        starts = np.r_[0, np.cumsum(self.visits_per_patient())[:-1]]
        return np.arange(self.n_visits) - np.repeat(starts, self.visits_per_patient())

    def known_gaps(self) -> np.ndarray:
        """Gaps in days between consecutive visits, where the source gives them."""
        later = self.visit_index() > 0
        gaps = self.gap_days[later]
        return gaps[np.isfinite(gaps)]

    def days_since_first(self) -> np.ndarray:
        """Each visit's time since the patient's first visit (unknown gaps count as 0)."""
        gaps = np.nan_to_num(self.gap_days, nan=0.0)
        out = np.empty(self.n_visits)
        for lo, hi in self._bounds():
            out[lo:hi] = np.cumsum(gaps[lo:hi]) - gaps[lo]
        return out

    def _bounds(self) -> list[tuple[int, int]]:
        ends = np.cumsum(self.visits_per_patient())
        return list(zip(np.r_[0, ends[:-1]], ends, strict=True))

    # --- codes ---------------------------------------------------------------------------------
    def vocabulary(self, modality: str, min_patients: int = 1) -> tuple[str, ...]:
        """Codes of ``modality`` held by at least ``min_patients`` patients, most common first."""
        ev = self.events[self.events["modality"] == modality]
        per_patient = (
            pd.DataFrame({"p": self.visit_patient[ev["visit"].to_numpy()], "c": ev["code"]})
            .drop_duplicates()
            .groupby("c")
            .size()
        )
        kept = per_patient[per_patient >= min_patients]
        return tuple(kept.sort_values(ascending=False, kind="stable").index.astype(str))

    def multi_hot(self, vocabularies: dict[str, tuple[str, ...]]) -> sp.csr_array:
        """(visits x sum of vocabulary sizes) 0/1 matrix, modalities in ``vocabularies`` order;
        codes outside the vocabularies are left out."""
        cols, offset = {}, 0
        for modality, vocab in vocabularies.items():
            cols |= {(modality, c): offset + j for j, c in enumerate(vocab)}
            offset += len(vocab)
        keys = list(zip(self.events["modality"], self.events["code"], strict=True))
        col = np.fromiter((cols.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        keep = col >= 0
        rows = self.events["visit"].to_numpy()[keep]
        data = np.ones(int(keep.sum()), dtype=np.float32)
        out = sp.coo_array((data, (rows, col[keep])), shape=(self.n_visits, offset)).tocsr()
        out.sum_duplicates()
        out.data[:] = 1.0
        return sp.csr_array(out)

    # --- selection and identity -----------------------------------------------------------------
    def subset(self, patients: np.ndarray) -> VisitCohort:
        """The given patients (positions, kept in ascending order) with all their visits."""
        patients = np.sort(np.asarray(patients, dtype=np.int64))
        new_index = np.full(self.n_patients, -1)
        new_index[patients] = np.arange(len(patients))
        keep = new_index[self.visit_patient] >= 0
        old_visits = np.flatnonzero(keep)
        visit_map = np.full(self.n_visits, -1)
        visit_map[old_visits] = np.arange(len(old_visits))
        ev = self.events[keep[self.events["visit"].to_numpy()]].copy()
        ev["visit"] = visit_map[ev["visit"].to_numpy()]
        return replace(
            self,
            patient_ids=self.patient_ids[patients],
            visit_patient=new_index[self.visit_patient[keep]],
            gap_days=self.gap_days[keep],
            events=ev.reset_index(drop=True),
            labels=None if self.labels is None else self.labels[patients],
        )

    def take(self, patients: np.ndarray) -> VisitCohort:
        """The given patients in the given order, repeats allowed (a bootstrap resample); a
        repeated patient gets a ``#k`` suffix so ids stay unique."""
        patients = np.asarray(patients, dtype=np.int64)
        counts = self.visits_per_patient()
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        old = np.concatenate([np.arange(starts[p], starts[p] + counts[p]) for p in patients])
        new_patient = np.repeat(np.arange(len(patients)), counts[patients])
        by_visit = self.events.groupby("visit").indices
        rows, visits = [], []
        for new_v, old_v in enumerate(old):
            idx = by_visit.get(old_v)
            if idx is not None:
                rows.append(idx)
                visits.append(np.full(len(idx), new_v))
        ev = self.events.iloc[np.concatenate(rows)].copy() if rows else self.events.iloc[:0].copy()
        ev["visit"] = np.concatenate(visits) if visits else []
        seen: dict[int, int] = {}
        ids = []
        for p in patients:
            k = seen.get(int(p), 0)
            seen[int(p)] = k + 1
            ids.append(str(self.patient_ids[p]) if k == 0 else f"{self.patient_ids[p]}#{k}")
        return replace(
            self,
            patient_ids=np.asarray(ids, dtype=object),
            visit_patient=new_patient,
            gap_days=self.gap_days[old],
            events=ev.reset_index(drop=True),
            labels=None if self.labels is None else self.labels[patients],
        )

    def split(self, holdout_fraction: float = 0.2, seed: int = 0) -> CohortSplit:
        """Patient-level split; ``train`` and ``holdout`` are patient positions."""
        return split_patients(self.patient_ids, self.labels, holdout_fraction, seed)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update("\x1f".join(map(str, self.patient_ids)).encode())
        h.update(self.visit_patient.astype(np.int64).tobytes())
        h.update(np.nan_to_num(self.gap_days, nan=-1.0).astype(np.float64).tobytes())
        h.update(pd.util.hash_pandas_object(self.events, index=False).to_numpy().tobytes())
        if self.labels is not None:
            h.update(self.labels.astype(np.int64).tobytes())
        return h.hexdigest()

    # --- exports ---------------------------------------------------------------------------------
    def to_long(self) -> pd.DataFrame:
        """One row per code: subject_id, visit (0-based), time (days since first visit),
        modality, code."""
        v = self.events["visit"].to_numpy()
        return pd.DataFrame(
            {
                "subject_id": self.patient_ids[self.visit_patient[v]],
                "visit": self.visit_index()[v],
                "time": np.round(self.days_since_first()[v], 4),
                "modality": self.events["modality"].to_numpy(),
                "code": self.events["code"].to_numpy(),
            }
        )

    def to_meds(self) -> pd.DataFrame:
        """MEDS data rows (``subject_id`` int64, ``time``, ``code`` = ``MODALITY//CODE``, one
        :data:`VISIT_MARKER` row per visit) plus a ``visit_id`` column; every timeline starts at
        :data:`MEDS_BASE_TIME` (a synthetic date)."""
        days = self.days_since_first()
        v = self.events["visit"].to_numpy()
        visit = np.r_[np.arange(self.n_visits), v]
        code = np.r_[
            np.full(self.n_visits, VISIT_MARKER, dtype=object),
            (self.events["modality"] + "//" + self.events["code"]).to_numpy(dtype=object),
        ]
        times = [MEDS_BASE_TIME + timedelta(days=float(d)) for d in days[visit]]
        return pd.DataFrame(
            {
                "subject_id": self.visit_patient[visit].astype(np.int64) + 1,
                "time": pd.to_datetime(times).as_unit("us"),
                "code": code,
                "numeric_value": np.full(len(visit), np.nan, dtype=np.float32),
                "visit_id": visit.astype(np.int64),
            }
        ).sort_values(["subject_id", "time", "visit_id"], kind="stable", ignore_index=True)


def from_frames(
    *,
    name: str,
    visits: pd.DataFrame,
    events: pd.DataFrame,
    modalities: tuple[str, ...],
    labels: pd.Series | None = None,
    label_name: str | None = None,
    label_classes: tuple[str, ...] = (),
    source: str = "",
    notes: list[str] | tuple[str, ...] = (),
) -> VisitCohort:
    """Build from ``visits`` (key, patient, order, gap_days) and ``events`` (key, modality, code).

    ``order`` sorts a patient's visits; ``labels`` is indexed by patient id. Events of visits not
    in ``visits`` are refused; duplicates collapse.
    """
    visits = visits.sort_values(["patient", "order"], kind="stable").reset_index(drop=True)
    if visits["key"].duplicated().any():
        dup = visits.loc[visits["key"].duplicated(), "key"].iloc[0]
        raise CohortError(f"visit {dup!r} appears twice")
    patient_codes, patients = pd.factorize(visits["patient"], sort=False)
    visit_pos = pd.Series(np.arange(len(visits)), index=visits["key"].to_numpy())
    unknown = ~events["key"].isin(visit_pos.index)
    if unknown.any():
        raise CohortError(
            f"{int(unknown.sum())} event(s) belong to no visit, e.g. visit {events.loc[unknown, 'key'].iloc[0]!r}"
        )
    ev = pd.DataFrame(
        {
            "visit": visit_pos.reindex(events["key"].to_numpy()).to_numpy(dtype=np.int64),
            "modality": events["modality"].astype(str).to_numpy(),
            "code": events["code"].astype(str).to_numpy(),
        }
    ).drop_duplicates()
    ev = ev.sort_values(["visit", "modality", "code"], kind="stable", ignore_index=True)
    gaps = visits["gap_days"].to_numpy(dtype=np.float64).copy()
    first = np.r_[True, patient_codes[1:] != patient_codes[:-1]]
    gaps[first] = 0.0
    label_arr = None
    if labels is not None:
        label_arr = labels.reindex(patients).fillna(-1).to_numpy(dtype=np.int64)
    return VisitCohort(
        name=name,
        patient_ids=np.asarray([str(p) for p in patients], dtype=object),
        visit_patient=patient_codes.astype(np.int64),
        gap_days=gaps,
        events=ev,
        modalities=modalities,
        labels=label_arr,
        label_name=label_name,
        label_classes=label_classes,
        source=source,
        notes=tuple(notes),
    )


def patient_table(cohort: VisitCohort, vocabularies: dict[str, tuple[str, ...]]) -> EHRTable:
    """One record per patient: the union of their visits' codes (``modality:code``), so the
    record-level review (prevalences, MMD, membership inference) applies to sequences too."""
    hot = cohort.multi_hot(vocabularies)
    to_patient = sp.csr_array(
        (np.ones(cohort.n_visits), (cohort.visit_patient, np.arange(cohort.n_visits))),
        shape=(cohort.n_patients, cohort.n_visits),
    )
    matrix = sp.csr_array((to_patient @ hot) > 0).astype(np.uint8)
    names = tuple(f"{m}:{c}" for m, vocab in vocabularies.items() for c in vocab)
    return EHRTable(
        record_ids=np.asarray(cohort.patient_ids, dtype=object),
        static=None,
        static_features=(),
        codes=CodeMatrix(matrix=matrix, vocabulary=names, system="visit codes", granularity=""),
        labels=cohort.labels,
        label_name=cohort.label_name,
        label_classes=cohort.label_classes,
    )
