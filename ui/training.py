"""Training in the Generate page, the same for every family: a plan from the family's form, a
start button that runs it as the user's background job, and the live progress panel.

The job outlives the tab (a reload reattaches to it) and, when it finishes, saves the model in
the model store itself, with who trained it, on what and how, whether or not a page is open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from core.cli import EquivalentCommand
from core.report import generation_figures as gfigs
from ui import auth, jobs, models, state


@dataclass(frozen=True)
class TrainingPlan:
    family_title: str
    total: int  # steps the progress bar counts to
    run: Callable[[str, jobs.Job], Any]  # (model name, job) -> a train result with .model
    command: EquivalentCommand  # the training command the form's settings stand for
    notes: tuple[str, ...] = ()  # what no flag states (the model fine-tuned), for the card


def plan(
    family_title: str,
    total: int,
    train: Callable[..., Any],
    *args: Any,
    command: EquivalentCommand,
    **kwargs: Any,
) -> TrainingPlan:
    """A plan that calls ``train(*args, model_id=name, callback=job.report,
    should_stop=job.stop_event.is_set, **kwargs)``: the contract of every family's trainer.
    ``command`` (the family's ``equivalent_command(config)``) is what the model card states:
    settings as flags, the cohort by its files and fingerprint, never the data itself."""

    def run(name: str, job: jobs.Job) -> Any:
        return train(
            *args, model_id=name, callback=job.report, should_stop=job.stop_event.is_set, **kwargs
        )

    init = kwargs.get("init_from")
    notes = ()
    if init is not None:
        sha = init.manifest.sha256[:12] if getattr(init, "manifest", None) else "unsaved"
        notes = (f"fine-tuned from {init.model_id} (sha256 {sha}), a step no flag states",)
    return TrainingPlan(family_title, total, run, command, notes)


def _owner() -> str:
    actor = auth.current_actor()
    return actor.subject if actor else ""


def current_job() -> jobs.Job | None:
    """This session's job, else the user's latest (a reload or another tab reattaches)."""
    job = st.session_state.get(state.TRAIN_JOB)
    if job is None:
        job = jobs.latest(_owner())
        if job is not None:
            st.session_state[state.TRAIN_JOB] = job
    return job


def _store_when_done(
    plan: TrainingPlan, name: str, data_card: dict, command: str
) -> Callable[[jobs.Job], Any]:
    def work(job: jobs.Job) -> Any:
        result = plan.run(name, job)
        metrics = {
            "final_loss": float(job.values[-1]) if job.values else None,
            "steps_done": job.step,
            "stopped_early": bool(result.stopped_early),
            "train_seconds": round(float(result.seconds), 1),
        }
        stored = models.store().save(
            lambda folder: result.model.save(
                folder, data_card=data_card, training_command=command, metrics=metrics
            ),
            name,
        )
        job.note = stored.name
        return result

    return work


def start_button(plan: TrainingPlan, cohort: Any, split: Any, key: str) -> None:
    """Starts ``plan`` as the user's background job when pressed (one job at a time per user)."""
    job = current_job()
    busy = job is not None and job.running
    if not st.button("Start training", type="primary", disabled=busy, key=key):
        return
    actor = auth.current_actor()
    store = models.store()
    name = store.free_name(f"{plan.family_title} on {cohort.name}")
    data_card = {
        "source": cohort.name,
        "cohort fingerprint": cohort.fingerprint(),
        "split": {"seed": split.seed, "holdout fraction": split.holdout_fraction},
        "training patients": len(split.train),
        "trained by": actor.subject if actor else "unknown",
        "trained in": "the Generate page",
    }
    command = plan.command.render(cohort, split, store.root / name, notes=plan.notes)
    work = _store_when_done(plan, name, data_card, command)
    job = jobs.start(name, plan.total, work, owner=_owner())
    st.session_state[state.TRAIN_JOB] = job


def progress_panel() -> None:
    """Progress bar (or queue place), stop button and loss chart; the stored model's name."""
    job = current_job()

    # Poll only while a job runs: an idle page must not rerun every second for every session.
    @st.fragment(run_every=1.0 if job is not None and job.running else None)
    def panel() -> None:
        current = current_job()
        if current is None:
            return
        if current.running and current.queued:
            st.info(
                f"**{current.title}** is queued: {jobs.MAX_RUNNING} trainings already run on this "
                f"server; {current.ahead} other(s) wait before it. It starts on its own.",
                icon=":material/hourglass_top:",
            )
        elif current.running:
            st.progress(
                current.step / max(current.total, 1),
                text=f"{current.title}: step {current.step:,} of {current.total:,}",
            )
        if current.running and st.button("Stop training", key="train_stop"):
            current.stop()
        if current.values:
            st.plotly_chart(
                gfigs.loss_curve(np.asarray(current.values)), key=f"loss_{current.started}"
            )
        if not current.running and current.note and current.error is None:
            if st.session_state.get("css.train_announced") != current.note:
                st.session_state["css.train_announced"] = current.note
                st.rerun(scope="app")  # the model list above now holds it
            stop = " (stopped early)" if current.result.stopped_early else ""
            st.success(
                f"Trained **{current.note}** in {current.result.seconds:.0f} s{stop} and saved it "
                "in the model store: pick it as a model above or see it on the Models page."
            )
            note = getattr(current.result, "missing_parts_note", None)
            if note:
                st.caption(note)
        if current.error:
            st.error(f"**Training failed.** {current.error}")

    panel()
