"""Typed access to this browser session's state. Pages never touch raw keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from core.data.cohort import Cohort, CohortSplit
from core.data.records import EHRTable, ehr_table
from core.data.summary import CohortSummary, summarize
from core.data.visits import VisitCohort
from core.encoding.vectors import VectorEncoding

COHORT = "css.cohort"
SPLIT = "css.split"
VISITS = "css.visits"
VISIT_SPLIT = "css.visit_split"
LAST_LOADED = "css.last_loaded"  # "records" or "visits": what the Cohort page shows
DEVICE = "css.device"
T = TypeVar("T")
SYNTHETIC_SETS = "css.synthetic_sets"
TRAIN_JOB = "css.train_job"


def upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def get_cohort() -> Cohort | None:
    return st.session_state.get(COHORT)


def set_cohort(cohort: Cohort) -> None:
    """Make ``cohort`` the session's cohort (only after a successful load); its split is redone."""
    st.session_state[COHORT] = cohort
    st.session_state.pop(SPLIT, None)
    st.session_state[LAST_LOADED] = "records"


def get_visits() -> VisitCohort | None:
    """The session's visit-sequence cohort (MEDS, MIMIC or eICU visits), if one was loaded."""
    return st.session_state.get(VISITS)


def set_visits(cohort: VisitCohort) -> None:
    st.session_state[VISITS] = cohort
    st.session_state.pop(VISIT_SPLIT, None)
    st.session_state[LAST_LOADED] = "visits"


def get_visit_split() -> CohortSplit | None:
    return st.session_state.get(VISIT_SPLIT)


def set_visit_split(split: CohortSplit) -> None:
    st.session_state[VISIT_SPLIT] = split


def visit_train() -> VisitCohort | None:
    """The training split of the session's visit cohort (patients), or None."""
    cohort, split = get_visits(), get_visit_split()
    return None if cohort is None or split is None else cohort.subset(split.train)


def last_loaded() -> str:
    return st.session_state.get(LAST_LOADED, "records")


def get_split() -> CohortSplit | None:
    return st.session_state.get(SPLIT)


def set_split(split: CohortSplit) -> None:
    st.session_state[SPLIT] = split


def device_preference() -> str:
    return st.session_state.get(DEVICE, "auto")


def synthetic_sets() -> dict:
    """Generated or uploaded synthetic sets of this session, by user-visible name."""
    return st.session_state.setdefault(SYNTHETIC_SETS, {})


REVIEW_CHOICE = "review_sets"  # the Review page's multiselect key
REVIEW_UPLOAD = "css.review_upload_done"
REVIEW_RESULTS = "css.review_results"


def upload_is_new(file_id: str) -> bool:
    """True until :func:`mark_upload_added` was called for this Review upload."""
    return st.session_state.get(REVIEW_UPLOAD) != file_id


def mark_upload_added(file_id: str) -> None:
    st.session_state[REVIEW_UPLOAD] = file_id


def choose_for_review(name: str) -> None:
    """Add a set to the Review page's selection."""
    st.session_state[REVIEW_CHOICE] = [*st.session_state.get(REVIEW_CHOICE, []), name]


def prune_review_choice(compatible: list[str], default: int = 3) -> None:
    """Keep only comparable sets selected; the first ``default`` ones on the first visit."""
    chosen = st.session_state.get(REVIEW_CHOICE, compatible[:default])
    st.session_state[REVIEW_CHOICE] = [n for n in chosen if n in compatible]


def review_results() -> tuple | None:
    """The last review run: (set names, reviews, settings)."""
    return st.session_state.get(REVIEW_RESULTS)


def set_review_results(names: list[str], reviews: list, settings: object) -> None:
    st.session_state[REVIEW_RESULTS] = (names, reviews, settings)


def unique_name(base: str, taken: dict) -> str:
    name, k = base, 2
    while name in taken:
        name, k = f"{base} ({k})", k + 1
    return name


def _per_cohort(key: str, compute: Callable[[Cohort], T]) -> T | None:
    """``compute(cohort)`` for the session cohort, computed once per loaded cohort."""
    cohort = get_cohort()
    if cohort is None:
        return None
    cached = st.session_state.get(key)
    if cached is None or cached[0] is not cohort:
        cached = (cohort, compute(cohort))
        st.session_state[key] = cached
    return cached[1]


def cohort_table() -> EHRTable | None:
    """The session cohort as one row per record."""
    return _per_cohort("css.cohort_table", ehr_table)


def cohort_summary() -> CohortSummary | None:
    """What the Cohort page shows about the session cohort."""
    return _per_cohort("css.cohort_summary", summarize)


def train_encoding() -> VectorEncoding | None:
    """The record encoding fitted on the session's training split, once per (cohort, split)."""
    cohort, split, table = get_cohort(), get_split(), cohort_table()
    if cohort is None or split is None or table is None:
        return None
    cached = st.session_state.get("css.train_encoding")
    if cached is None or cached[0] is not cohort or cached[1] is not split:
        cached = (cohort, split, VectorEncoding.fit(table.subset(split.train)))
        st.session_state["css.train_encoding"] = cached
    return cached[2]
