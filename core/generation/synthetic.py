"""A synthetic set and what it states about where it came from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from core.data.cohort import Cohort
from core.data.records import EHRTable
from core.data.visits import VisitCohort


class SamplingSettings(Protocol):
    """What any generator's settings state about a synthetic set (for provenance)."""

    n: int
    sampler: str
    steps: int
    seed: int
    guidance: float
    label_mix: tuple[float, ...] | None

    @property
    def schedule_name(self) -> str: ...


@dataclass(frozen=True, eq=False, kw_only=True)
class SyntheticSet:
    """A synthetic dataset with everything needed to reproduce and audit it.

    ``settings`` is set only when a model sampled the set; uploads and baselines carry ``None``
    and say what they are in ``origin`` (a file's name and sha256, a baseline's definition):
    build those with :meth:`from_upload` and :meth:`baseline`. Fields are keyword-only, so that
    no caller fills the sampling fields by position.
    """

    table: EHRTable
    vectors: np.ndarray  # encoded [0, 1] vectors, as compared by the dimension-wise metrics
    model_id: str  # the model, or what else made the set ("uploaded file x.csv")
    settings: SamplingSettings | None
    seconds: float
    network_evaluations: int
    checkpoint_sha256: str = ""
    extra: dict = field(default_factory=dict)
    cohort: Cohort | None = None  # static + temporal records, for generators that make series
    origin: dict = field(default_factory=dict)
    visits: VisitCohort | None = None  # visit sequences, for generators that make them

    @classmethod
    def from_upload(
        cls, table: EHRTable, vectors: np.ndarray, filename: str, content: bytes
    ) -> SyntheticSet:
        """A set read from a user's file: named by the file and bound to its bytes' sha256."""
        origin = {"file sha256": hashlib.sha256(content).hexdigest()}
        return cls._unsampled(table, vectors, f"uploaded file {filename}", origin)

    @classmethod
    def baseline(
        cls, table: EHRTable, vectors: np.ndarray, name: str, definition: str, seed: int
    ) -> SyntheticSet:
        """A reference set made by a fixed rule, not a model (``name``: "independent
        marginals"); its provenance states the rule and the seed."""
        origin = {"definition": definition, "seed": seed}
        return cls._unsampled(table, vectors, f"baseline: {name}", origin)

    @classmethod
    def _unsampled(
        cls, table: EHRTable, vectors: np.ndarray, source: str, origin: dict
    ) -> SyntheticSet:
        """No model sampled it: no settings, no sampling time or network evaluations."""
        return cls(
            table=table,
            vectors=vectors,
            model_id=source,
            settings=None,
            seconds=0.0,
            network_evaluations=0,
            origin=origin,
        )

    def labelled_as(self, classes: tuple[str, ...]) -> SyntheticSet:
        """The same records with their label classes named as ``classes`` (a cohort's own
        names for the same class indices), so that a download reads back against that cohort.
        Unchanged when there are no labels or the number of classes differs."""
        own = self.table.label_classes
        if self.table.labels is None or not classes or tuple(classes) == own:
            return self
        if own and len(own) != len(classes):
            return self
        if not own and int(self.table.labels.max(initial=-1)) >= len(classes):
            return self
        named = {"label_classes": tuple(classes)}
        return replace(
            self,
            table=replace(self.table, **named),
            cohort=None if self.cohort is None else replace(self.cohort, **named),
            visits=None if self.visits is None else replace(self.visits, **named),
        )

    @property
    def provenance(self) -> dict:
        """What the report and release manifest state about where the set came from: exactly
        what its producer recorded, and no sampler for a set no model sampled."""
        out: dict = {"source": self.model_id}
        if self.settings is not None:
            out |= {
                "checkpoint sha256": self.checkpoint_sha256 or "n/a",
                "sampler": self.settings.sampler,
                "steps": self.settings.steps,
                "schedule": self.settings.schedule_name,
                "seed": self.settings.seed,
                "guidance": self.settings.guidance,
            }
        return out | self.origin

    def describe(self) -> str:
        """One line for a caption: how many records, from what, how fast."""
        n = self.table.n_records
        s = self.settings
        if s is None:
            return f"{n:,} records: {self.model_id}."
        guidance = f", guidance {s.guidance:g}" if s.label_mix else ""
        return (
            f"{n:,} records from `{self.model_id}` · {s.sampler}, {s.steps} steps, "
            f"{s.schedule_name} schedule, seed {s.seed}{guidance} · {self.seconds:.1f} s "
            f"({n / max(self.seconds, 1e-9):,.0f} records/s)."
        )
