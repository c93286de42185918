"""Typed access to this browser session's state. Pages never touch raw keys."""

from __future__ import annotations

import streamlit as st

from core.data.cohort import Cohort, CohortSplit

COHORT = "css.cohort"
SPLIT = "css.split"
DEVICE = "css.device"


def upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def get_cohort() -> Cohort | None:
    return st.session_state.get(COHORT)


def set_cohort(cohort: Cohort) -> None:
    """Make ``cohort`` the session's cohort (only after a successful load); its split is redone."""
    st.session_state[COHORT] = cohort
    st.session_state.pop(SPLIT, None)


def get_split() -> CohortSplit | None:
    return st.session_state.get(SPLIT)


def set_split(split: CohortSplit) -> None:
    st.session_state[SPLIT] = split


def device_preference() -> str:
    return st.session_state.get(DEVICE, "auto")
