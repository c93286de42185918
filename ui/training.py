"""Training in the Generate page, the same for every family: a plan from the family's form, a
start button that runs it as this session's background job, and the live progress panel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from core.report import generation_figures as gfigs
from ui import jobs, state


@dataclass(frozen=True)
class TrainingPlan:
    family_title: str
    total: int  # steps the progress bar counts to
    run: Callable[[str, jobs.Job], Any]  # (model name, job) -> a train result with .model


def plan(
    family_title: str, total: int, train: Callable[..., Any], *args: Any, **kwargs: Any
) -> TrainingPlan:
    """A plan that calls ``train(*args, model_id=name, callback=job.report,
    should_stop=job.stop_event.is_set, **kwargs)``: the contract of every family's trainer."""

    def run(name: str, job: jobs.Job) -> Any:
        return train(
            *args, model_id=name, callback=job.report, should_stop=job.stop_event.is_set, **kwargs
        )

    return TrainingPlan(family_title, total, run)


def current_job() -> jobs.Job | None:
    return st.session_state.get(state.TRAIN_JOB)


def start_button(plan: TrainingPlan, cohort_name: str, key: str) -> None:
    """Starts ``plan`` as this session's background job when pressed (one job at a time)."""
    job = current_job()
    busy = job is not None and job.running
    if not st.button("Start training", type="primary", disabled=busy, key=key):
        return
    name = state.unique_name(f"{plan.family_title} on {cohort_name}", state.session_models())
    st.session_state[state.TRAIN_JOB] = jobs.start(name, plan.total, lambda j: plan.run(name, j))


def progress_panel() -> None:
    """Progress bar, stop button and loss chart; a finished model joins the session's models."""
    job = current_job()

    # Poll only while a job runs: an idle page must not rerun every second for every session.
    @st.fragment(run_every=1.0 if job is not None and job.running else None)
    def panel() -> None:
        current = current_job()
        if current is None:
            return
        if current.running:
            st.progress(
                current.step / max(current.total, 1),
                text=f"{current.title}: step {current.step:,} of {current.total:,}",
            )
            if st.button("Stop training", key="train_stop"):
                current.stop()
        if current.values:
            st.plotly_chart(
                gfigs.loss_curve(np.asarray(current.values)), key=f"loss_{current.started}"
            )
        done = not current.running and current.finished is not None and current.error is None
        if done and current.result is not None:
            models = state.session_models()
            if current.title not in models:
                models[current.title] = current.result.model
                st.rerun(scope="app")
            note = " (stopped early)" if current.result.stopped_early else ""
            st.success(
                f"Trained **{current.title}** in {current.result.seconds:.0f} s{note}. "
                "It is now in the model list."
            )
        if current.error:
            st.error(f"**Training failed.** {current.error}")

    panel()
