"""Typed access to this browser session's state. Pages never touch raw keys."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Generic, TypeVar

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
    """Make ``cohort`` the session's cohort (only after a successful load); its split is redone.
    It also goes on the shelf, beside the cohorts loaded before it."""
    st.session_state[COHORT] = cohort
    st.session_state.pop(SPLIT, None)
    st.session_state[LAST_LOADED] = "records"
    _shelve(cohort, "records")


def get_visits() -> VisitCohort | None:
    """The session's visit-sequence cohort (MEDS, MIMIC or eICU visits), if one was loaded."""
    return st.session_state.get(VISITS)


def set_visits(cohort: VisitCohort) -> None:
    st.session_state[VISITS] = cohort
    st.session_state.pop(VISIT_SPLIT, None)
    st.session_state[LAST_LOADED] = "visits"
    _shelve(cohort, "visits")


def get_visit_split() -> CohortSplit | None:
    return st.session_state.get(VISIT_SPLIT)


def set_visit_split(split: CohortSplit) -> None:
    st.session_state[VISIT_SPLIT] = split
    _shelf_split(get_visits(), split)


# --- the cohort shelf ----------------------------------------------------------------------------
# Every cohort loaded in this session stays on a shelf, by name, with its split; one of each kind
# (records, visits) is active, and the sidebar switches between them on every page (issue 31:
# loading a second cohort no longer drops the first, and returning to the Cohort page keeps it).
# Results bound to a cohort (reviews, forecasts) say when the active one changed.

SHELF = "css.shelf"
MAX_SHELF = 6  # cohorts kept per session (each is held in memory); the oldest inactive goes


@dataclass
class Shelved:
    kind: str  # "records" or "visits"
    cohort: Cohort | VisitCohort
    split: CohortSplit | None = None


def shelf() -> dict[str, Shelved]:
    """The cohorts loaded in this session, by name, in load order."""
    return st.session_state.setdefault(SHELF, {})


def _shelve(cohort: Cohort | VisitCohort, kind: str) -> None:
    held = shelf()
    for name, entry in list(held.items()):
        if entry.kind == kind and entry.cohort.fingerprint() == cohort.fingerprint():  # again
            del held[name]
    held[unique_name(cohort.name, held)] = Shelved(kind, cohort)
    active = {id(get_cohort()), id(get_visits())}
    while len(held) > MAX_SHELF:
        oldest = next((n for n, e in held.items() if id(e.cohort) not in active), None)
        if oldest is None:
            break
        del held[oldest]


def _shelf_split(cohort: Cohort | VisitCohort | None, split: CohortSplit) -> None:
    for entry in shelf().values():
        if entry.cohort is cohort:
            entry.split = split


def active_shelf_name() -> str | None:
    """The shelf name of the cohort the pages now use (the kind loaded or switched to last)."""
    current = get_visits() if last_loaded() == "visits" else get_cohort()
    return next((n for n, e in shelf().items() if e.cohort is current), None)


def activate(name: str) -> None:
    """Make the shelved cohort ``name`` the session's cohort of its kind, with its split."""
    entry = shelf()[name]
    if entry.kind == "visits":
        st.session_state[VISITS] = entry.cohort
        st.session_state[LAST_LOADED] = "visits"
        key, split = VISIT_SPLIT, entry.split
    else:
        st.session_state[COHORT] = entry.cohort
        st.session_state[LAST_LOADED] = "records"
        key, split = SPLIT, entry.split
    if split is None:
        st.session_state.pop(key, None)
    else:
        st.session_state[key] = split


def drop_from_shelf(name: str) -> None:
    """Remove ``name`` from the shelf; an active cohort stays loaded until another replaces it."""
    shelf().pop(name, None)


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
    _shelf_split(get_cohort(), split)


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
    """Add a new set to the Review page's selection (and tag it with the cohort in use)."""
    tag_with_cohort(name)
    st.session_state[REVIEW_CHOICE] = [*st.session_state.get(REVIEW_CHOICE, []), name]


SET_COHORT = "css.set_cohort"  # set name -> shelf name of the cohort in use when it was made


def tag_with_cohort(name: str) -> None:
    """Remember which cohort of the shelf a new set was made for."""
    active = active_shelf_name()
    if active is not None:
        st.session_state.setdefault(SET_COHORT, {})[name] = active


def set_label(name: str) -> str:
    """``name``, followed by the cohort it was made for when that is not the one in use."""
    made_for = st.session_state.get(SET_COHORT, {}).get(name)
    if made_for is None or made_for == active_shelf_name():
        return name
    return f"{name} (made for {made_for})"


REVIEW_CHOICE_BY_COHORT = "css.review_choice_by_cohort"
REVIEW_CHOICE_COHORT = "css.review_choice_cohort"  # the cohort the current choice was made in


def prune_review_choice(compatible: list[str], default: int = 3) -> None:
    """Keep only comparable sets selected; the first ``default`` ones on the first visit. The
    choice is remembered per cohort: switching back to a cohort brings its sets back."""
    remembered = st.session_state.setdefault(REVIEW_CHOICE_BY_COHORT, {})
    cohort = active_shelf_name()
    chosen = st.session_state.get(REVIEW_CHOICE)
    if chosen is None:  # Streamlit drops a widget's state on another page: back to the last choice
        chosen = remembered.get(cohort, compatible[:default])
    elif st.session_state.get(REVIEW_CHOICE_COHORT, cohort) != cohort and cohort in remembered:
        chosen = remembered[cohort]  # switched back: this cohort's sets, as last chosen
    kept = [n for n in chosen if n in compatible]
    remembered[cohort] = kept
    st.session_state[REVIEW_CHOICE_COHORT] = cohort
    st.session_state[REVIEW_CHOICE] = kept


def review_results(inputs_for: Callable[[list[str]], dict[str, Input]]) -> Bound | None:
    """The last review run, (set names, reviews, settings), with what changed since among the
    inputs now on the page for those sets (``inputs_for(names)``: cohort, split, each set's
    file, settings; :func:`ui.review.cache.review_inputs`)."""
    held = st.session_state.get(REVIEW_RESULTS)
    if held is None:
        return None
    return bound_result(REVIEW_RESULTS, inputs_for(held[0][0]), "this review")


def reviewed_settings() -> object | None:
    """The settings of the last review run: the Review page's widgets start from them, so that
    leaving the page (which resets its widgets) does not put the review out of date."""
    held = st.session_state.get(REVIEW_RESULTS)
    return None if held is None else held[0][2]


def set_review_results(
    names: list[str], reviews: list, settings: object, inputs: dict[str, Input]
) -> None:
    keep_bound(REVIEW_RESULTS, (names, reviews, settings), inputs)


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


# --- results bound to the inputs that made them -------------------------------------------------
# A page keeps its result with the inputs it was made from; on every rerun it asks for it with
# the inputs now on the page and learns what changed, so that no result is shown as if it
# belonged to inputs it was not made from (issue 28: a forecast beside another patient's prior).


def fingerprint(value: object) -> str:
    """sha256 of bytes, or of the ``repr`` of plain data (strings, numbers, tuples, frozen
    dataclasses of those): what identifies an input."""
    raw = value if isinstance(value, bytes) else repr(value).encode()
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Input:
    """One input of a result: what a message calls it, how it is shown, and its fingerprint."""

    label: str  # "the prior image"
    shown: str  # "`xray_0012.png`"
    identity: str  # fingerprint of the value

    @classmethod
    def of(cls, label: str, value: object, shown: str | None = None) -> Input:
        return cls(label, str(value) if shown is None else shown, fingerprint(value))


NOTHING = "none"  # how an absent input is shown


@dataclass(frozen=True)
class Bound(Generic[T]):
    """A kept result, the inputs it was made from, and how today's inputs differ from those."""

    value: T
    made_from: dict[str, Input]
    changes: tuple[str, ...]  # "the horizon changed since this forecast (was 3 days, now 5 days)"
    changed: frozenset[str]  # the names of the inputs that changed

    @property
    def stale(self) -> bool:
        return bool(self.changes)


def keep_bound(key: str, value: object, inputs: dict[str, Input]) -> None:
    """Keep ``value`` as the result made from ``inputs`` (name -> :class:`Input`)."""
    st.session_state[key] = (value, dict(inputs))


def drop_bound(key: str) -> None:
    st.session_state.pop(key, None)


def bound_result(key: str, inputs: dict[str, Input], what: str = "this result") -> Bound | None:
    """The result kept under ``key``, with each of ``inputs`` that differs from what made it
    named (``what``: how the sentences call the result). None when nothing is kept."""
    held = st.session_state.get(key)
    if held is None:
        return None
    value, made_from = held
    changes, changed = [], set()
    for name in dict.fromkeys([*made_from, *inputs]):
        was, now = made_from.get(name), inputs.get(name)
        if was is not None and now is not None and was.identity == now.identity:
            continue
        label = (was or now).label
        was_shown = NOTHING if was is None else was.shown
        now_shown = NOTHING if now is None else now.shown
        if was_shown == now_shown:  # same name or value shown, other content
            now_shown += " with other content"
        changes.append(f"{label} changed since {what} (was {was_shown}, now {now_shown})")
        changed.add(name)
    return Bound(value, made_from, tuple(changes), frozenset(changed))


_SETTING_LABELS = {"n": "the number generated", "label_mix": "the label mix", "eta": "DDIM eta"}


def settings_inputs(settings: object) -> dict[str, Input]:
    """Each field of a settings dataclass as an input ("the steps", "the seed", ...)."""
    return {
        f.name: Input.of(
            _SETTING_LABELS.get(f.name, f"the {f.name.replace('_', ' ')}"),
            getattr(settings, f.name),
        )
        for f in fields(settings)
    }


GENERATED = "css.generated."  # + set name: the inputs a set generated on the Generate page had


def keep_generated(name: str, inputs: dict[str, Input]) -> None:
    tag_with_cohort(name)
    keep_bound(GENERATED + name, name, inputs)


def generated(name: str, inputs: dict[str, Input]) -> Bound | None:
    """The set ``name`` if the Generate page made it, with what changed since among ``inputs``
    (the model and the settings its form holds now)."""
    return bound_result(GENERATED + name, inputs, "it was generated")
