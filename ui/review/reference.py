"""The real cohort the Review compares against: the session's record cohort, or its visit cohort."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import streamlit as st

from core.data.cohort import Cohort, CohortSplit
from core.data.records import EHRTable
from core.data.visits import VisitCohort, patient_table
from core.ehrpd.encoding import VisitEncoding
from core.encoding.vectors import VectorEncoding
from core.generation import SyntheticSet
from core.metrics.specs import SequenceInputs
from ui import state


@dataclass(frozen=True, eq=False)
class RealReference:
    """What the Review compares against: the session's record cohort, or its visit cohort
    (patients' code bags, with the sequences for the sequence metrics)."""

    cohort: Cohort | VisitCohort
    split: CohortSplit
    table: EHRTable  # every record (or patient), for uploads
    train: EHRTable
    holdout: EHRTable
    encoding: VectorEncoding
    visits: tuple[VisitCohort, VisitCohort, dict] | None = None  # train, holdout, vocabularies
    unit: str = "records"

    @cached_property
    def fingerprint(self) -> str:
        """The cohort's fingerprint, computed once per reference (visit cohorts hash their
        events on every call)."""
        return self.cohort.fingerprint()

    def sequences_for(self, synth: SyntheticSet) -> SequenceInputs | None:
        if self.visits is None or synth.visits is None:
            return None
        return SequenceInputs(self.visits[0], self.visits[1], synth.visits, self.visits[2])


def reference() -> RealReference | None:
    """The cohort the Cohort page shows (the one loaded last), with its split."""
    visits, v_split = state.get_visits(), state.get_visit_split()
    if visits is not None and v_split is not None and state.last_loaded() == "visits":
        cached = st.session_state.get("css.review_visit_reference")
        if cached is not None and cached.cohort is visits and cached.split is v_split:
            return cached
        train_v, holdout_v = visits.subset(v_split.train), visits.subset(v_split.holdout)
        vocab = VisitEncoding.fit(train_v).vocabulary_map  # EHRPD's default vocabulary rule
        table = patient_table(visits, vocab)
        train = table.subset(v_split.train)
        ref = RealReference(
            visits,
            v_split,
            table,
            train,
            table.subset(v_split.holdout),
            VectorEncoding.fit(train),
            (train_v, holdout_v, vocab),
            "patients",
        )
        st.session_state["css.review_visit_reference"] = ref
        return ref
    cohort, split, table = state.get_cohort(), state.get_split(), state.cohort_table()
    if cohort is None or split is None or table is None:
        return None
    return RealReference(
        cohort,
        split,
        table,
        table.subset(split.train),
        table.subset(split.holdout),
        state.train_encoding(),
    )
