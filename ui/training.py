"""Training in the Generate page, the same for every family: a plan from the family's form, a
start button that runs it as the user's background job, and the live progress panel.

The job outlives the tab (a reload reattaches to it) and, when it finishes, saves the model in
the model store itself, with who trained it, on what and how, whether or not a page is open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from core.cli import EquivalentCommand
from core.errors import CoreError
from core.loading import fidelity_check
from core.report import generation_figures as gfigs
from core.store import check_name, safe_name
from ui import auth, jobs, models, state, widgets


@dataclass(frozen=True)
class TrainingPlan:
    family_title: str
    total: int  # steps the progress bar counts to
    run: Callable[[str, jobs.Job], Any]  # (model name, job) -> a train result with .model
    command: EquivalentCommand  # the training command the form's settings stand for
    notes: tuple[str, ...] = ()  # what no flag states (the model fine-tuned), for the card
    train_data: Any = None  # the training split the model is fitted on: the fidelity check's


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
    ``args[0]`` is the training split (the fidelity check at the end compares with it).
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
    return TrainingPlan(family_title, total, run, command, notes, args[0] if args else None)


def default_steps(device: Any, cpu: int, accelerator: int) -> int:
    """A form's default step count for ``device``: ``cpu`` is sized to end in a few minutes on
    a CPU (each family's value says what it was measured at), ``accelerator`` on a GPU."""
    return cpu if getattr(device, "type", str(device)) == "cpu" else accelerator


def duration(seconds: float) -> str:
    """'45 s', '4 min 10 s', '1 h 05 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


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
            "steps_planned": job.total,
            "stopped_early": bool(result.stopped_early),
            "train_seconds": round(float(result.seconds), 1),
        }
        if plan.train_data is not None:
            job.phase = "Checking fidelity against the training split"
            try:
                job.check = fidelity_check(result.model, plan.train_data)
                metrics |= job.check.as_metrics()
            except CoreError as exc:  # the model is still saved; the card says why no check
                metrics["fidelity_check"] = f"not computed: {exc}"
        privacy = getattr(result, "privacy", None)  # a DP training's spent guarantee
        card = (
            data_card if privacy is None else data_card | {"differential_privacy": privacy.card()}
        )
        job.phase = "Saving in the model store"
        stored = models.store().save(
            lambda folder: result.model.save(
                folder, data_card=card, training_command=command, metrics=metrics
            ),
            name,
        )
        job.note = stored.name
        return result

    return work


_CLEAR_NAME = "css.train_clear_name"


def _name_field(plan: TrainingPlan, cohort: Any, key: str) -> tuple[str | None, str]:
    """The model-name field: (the name to save under, or None when the typed one is refused;
    the automatic name). The refusal is shown under the field."""
    store = models.store()
    auto = store.free_name(safe_name(f"{plan.family_title} on {cohort.name}"))
    if st.session_state.pop(_CLEAR_NAME, None) == key:  # a started training took the name
        st.session_state[f"{key}_name"] = ""
    typed = st.text_input(
        "Model name",
        "",
        key=f"{key}_name",
        placeholder=auto,
        max_chars=100,
        help="Leave empty for the name shown. Letters, digits, spaces and . _ ( ) + - ; "
        "up to 100 characters.",
    ).strip()
    if not typed:
        return auto, auto
    try:
        name = check_name(typed)
    except CoreError as exc:
        st.error(f"**This name cannot be used.** {exc}", icon=":material/error:")
        return None, auto
    if (store.root / name).exists():
        st.error(
            f"**A model named '{name}' is already in the store.** Choose another name, or leave "
            f"the field empty for '{auto}'.",
            icon=":material/error:",
        )
        return None, auto
    return name, auto


def start_button(plan: TrainingPlan, cohort: Any, split: Any, key: str) -> None:
    """The model-name field and the button that starts ``plan`` as the user's background job
    (one job at a time per user). A refused name or a failing start is a message, not a trace."""
    job = current_job()
    busy = job is not None and job.running
    try:
        name, _ = _name_field(plan, cohort, key)
    except CoreError as exc:
        widgets.show_error(exc, "Naming the model")
        return
    if not st.button("Start training", type="primary", disabled=busy or name is None, key=key):
        return
    try:
        actor = auth.current_actor()
        store = models.store()
        data_card = {
            "source": cohort.name,
            "cohort fingerprint": cohort.fingerprint(),
            "split": {"seed": split.seed, "holdout fraction": split.holdout_fraction},
            "training patients": len(split.train),
            "trained by": actor.subject if actor else "unknown",
            "trained in": "the Generate page",
        }
        command = plan.command.render(cohort, split, store.root / name, notes=plan.notes)
    except CoreError as exc:
        widgets.show_error(exc, "Starting the training")
        return
    work = _store_when_done(plan, name, data_card, command)
    job = jobs.start(name, plan.total, work, owner=_owner())
    st.session_state[state.TRAIN_JOB] = job
    st.session_state[_CLEAR_NAME] = key  # the next run offers a fresh name, not a taken one


def _rate_line(job: jobs.Job) -> str:
    """'3.1 steps/s · about 4 min 10 s left · 35 s so far', or what it is doing before that."""
    now = time.time()
    elapsed = duration(now - (job.began or job.started))
    if job.phase:
        return f"{job.phase}… ({elapsed} so far)"
    rate = job.steps_per_second
    if rate is None:
        return f"Preparing the data and the network… ({elapsed} so far)"
    left = job.seconds_left
    shown = f"{rate:.2f}" if rate < 10 else f"{rate:,.0f}"
    return f"{shown} steps/s · about {duration(left or 0)} left at this rate · {elapsed} so far"


def progress_panel() -> None:
    """Progress bar (or queue place), steps/s and time left, stop button and loss chart; the
    stored model's name, marked partial or weak when it is."""
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
                min(current.step / max(current.total, 1), 1.0),
                text=f"{current.title}: step {current.step:,} of {current.total:,}",
            )
            st.caption(_rate_line(current), help="Measured on this server since the first step.")
        if current.running and st.button("Stop training", key="train_stop"):
            current.stop()
        if current.values:
            st.plotly_chart(
                gfigs.loss_curve(np.asarray(current.values), np.asarray(current.value_steps)),
                key=f"loss_{current.started}",
            )
        if not current.running and current.note and current.error is None:
            if st.session_state.get("css.train_announced") != current.note:
                st.session_state["css.train_announced"] = current.note
                st.rerun(scope="app")  # the model list above now holds it
            result = current.result
            st.success(
                f"Trained **{current.note}** in {duration(result.seconds)} and saved it in the "
                "model store: pick it as a model above or see it on the Models page."
            )
            for line in models.quality_notes(
                {
                    "stopped_early": result.stopped_early,
                    "steps_done": current.step,
                    "steps_planned": current.total,
                    **(current.check.as_metrics() if current.check else {}),
                }
            ):
                st.warning(line, icon=":material/warning:")
            note = getattr(result, "missing_parts_note", None)
            if note:
                st.caption(note)
        if current.error:
            st.error(f"**Training failed.** {current.error}", icon=":material/error:")

    panel()
