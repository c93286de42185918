"""Visit cohorts <-> padded tensors: a multi-hot vector per visit over the kept vocabularies and
a standardised log gap. Everything stored is an aggregate: codes held by at least
``min_patients`` training patients, gap mean and spread, the visit cap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from core.config import JSONConfig
from core.data.visits import VisitCohort, from_frames
from core.errors import CohortError


@dataclass(frozen=True)
class SequenceBatch:
    visits: torch.Tensor  # (P, V, D) 0/1 float
    gaps: torch.Tensor  # (P, V) standardised log1p(days); NaN = unknown or no visit
    lengths: torch.Tensor  # (P,) long, visits kept per patient (<= max_visits)
    labels: torch.Tensor | None  # (P,) long, -1 unknown


@dataclass(frozen=True)
class VisitEncoding(JSONConfig):
    modalities: tuple[str, ...]
    vocabularies: tuple[tuple[str, ...], ...]
    gap_mean: float
    gap_std: float
    max_visits: int
    min_patients: int
    label_name: str | None = None
    label_classes: tuple[str, ...] = ()

    @property
    def dim(self) -> int:
        return sum(len(v) for v in self.vocabularies)

    @property
    def vocabulary_map(self) -> dict[str, tuple[str, ...]]:
        return dict(zip(self.modalities, self.vocabularies, strict=True))

    @classmethod
    def fit(
        cls,
        cohort: VisitCohort,
        *,
        min_patients: int = 5,
        max_codes: int = 256,
        max_visits: int | None = None,
    ) -> VisitEncoding:
        """Vocabularies of codes held by >= ``min_patients`` patients (at most ``max_codes`` per
        modality, most common first); the visit cap defaults to the 99th percentile of visits
        per patient, between 2 and 32."""
        vocabs = tuple(cohort.vocabulary(m, min_patients)[:max_codes] for m in cohort.modalities)
        if not any(vocabs):
            raise CohortError(
                f"no code is held by {min_patients} or more patients; lower min_patients or load more data"
            )
        gaps = np.log1p(cohort.known_gaps())
        cap = max_visits or int(np.clip(np.percentile(cohort.visits_per_patient(), 99), 2, 32))
        return cls(
            modalities=tuple(cohort.modalities),
            vocabularies=vocabs,
            gap_mean=float(gaps.mean()) if len(gaps) else 0.0,
            gap_std=float(max(gaps.std(), 1e-3)) if len(gaps) > 1 else 1.0,
            max_visits=cap,
            min_patients=min_patients,
            label_name=cohort.label_name,
            label_classes=tuple(cohort.label_classes),
        )

    def check_compatible(self, cohort: VisitCohort) -> None:
        if tuple(cohort.modalities) != self.modalities:
            raise CohortError(
                f"the cohort's modalities {cohort.modalities} differ from the model's {self.modalities}"
            )

    def encode(self, cohort: VisitCohort) -> SequenceBatch:
        self.check_compatible(cohort)
        hot = cohort.multi_hot(self.vocabulary_map).toarray()
        lengths = np.minimum(cohort.visits_per_patient(), self.max_visits)
        p, v = cohort.n_patients, self.max_visits
        visits = np.zeros((p, v, self.dim), dtype=np.float32)
        gaps = np.full((p, v), np.nan, dtype=np.float32)
        index = cohort.visit_index()
        keep = index < self.max_visits
        rows, cols = cohort.visit_patient[keep], index[keep]
        visits[rows, cols] = hot[keep]
        gaps[rows, cols] = (np.log1p(cohort.gap_days[keep]) - self.gap_mean) / self.gap_std
        gaps[:, 0] = np.nan  # a first visit has no gap to predict
        labels = None if cohort.labels is None else torch.as_tensor(cohort.labels, dtype=torch.long)
        return SequenceBatch(
            torch.from_numpy(visits), torch.from_numpy(gaps), torch.as_tensor(lengths), labels
        )

    def gap_days(self, standardised: np.ndarray) -> np.ndarray:
        return np.clip(np.expm1(standardised * self.gap_std + self.gap_mean), 0.0, None)

    def decode(
        self,
        visits: list[np.ndarray],
        gaps: list[np.ndarray],
        ids: np.ndarray,
        labels: np.ndarray | None,
        name: str,
    ) -> VisitCohort:
        """Per patient (V_i, D) 0/1 arrays and (V_i,) gaps in days -> a visit cohort."""
        names = [(m, c) for m, vocab in self.vocabulary_map.items() for c in vocab]
        rows, events = [], []
        for pid, hot, gap in zip(ids, visits, gaps, strict=True):
            for k in range(len(hot)):
                key = f"{pid}|{k}"
                rows.append((key, pid, k, 0.0 if k == 0 else float(gap[k])))
                events += [(key, *names[j]) for j in np.flatnonzero(hot[k] > 0.5)]
        frame = pd.DataFrame(rows, columns=["key", "patient", "order", "gap_days"])
        ev = pd.DataFrame(events, columns=["key", "modality", "code"])
        label_series = None
        if labels is not None:
            label_series = pd.Series(labels, index=[str(i) for i in ids])
        return from_frames(
            name=name,
            visits=frame,
            events=ev,
            modalities=self.modalities,
            labels=label_series,
            label_name=self.label_name,
            label_classes=self.label_classes,
            source=name,
        )
