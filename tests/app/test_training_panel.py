"""Training with a horizon (issue 31): the panel shows steps/s and the time left from the first
steps, the loss chart counts real steps, the model name is safe or refused inline, and a
stopped or weak model is marked so on the Models page and in its card."""

from __future__ import annotations

import base64
import json
import threading
import time

import numpy as np
import pytest

from core.ehrdiff.train import TrainConfig, train_ehrdiff
from tests.app.pages import load_demo, open_page
from tests.core.ehrdiff.test_pipeline import code_table
from ui import jobs

TRAIN_KEY = "ehrdiff_train_start"  # the EHRDiff start button's key; its name field adds _name


def _reporting_job(steps: list[int], release: threading.Event) -> jobs.Job:
    """A real background job that reports ``steps`` (loss 1/step) a few ms apart, then waits."""

    def work(job: jobs.Job) -> None:
        for s in steps:
            job.report(s, 1000, 1.0 / s)
            time.sleep(0.02)
        release.wait(30)

    job = jobs.start("toy training", 1000, work, owner="panel-test")
    deadline = time.time() + 10
    while job.step < steps[-1] and time.time() < deadline:
        time.sleep(0.01)
    return job


def test_job_rate_and_time_left_are_measured_from_its_reports():
    job = jobs.Job(title="t", total=1000)
    assert job.steps_per_second is None and job.seconds_left is None  # nothing measured yet
    job.report(10, 1000, 0.5)
    job.first_report = (10, 100.0)  # two reports 4 s apart, 40 steps between them
    job.report(50, 1000, 0.4)
    job.last_report = (50, 104.0)
    assert job.steps_per_second == pytest.approx(10.0)
    assert job.seconds_left == pytest.approx(95.0)  # 950 steps at 10 steps/s
    assert job.value_steps == [10, 50] and job.values == [0.5, 0.4]


def test_panel_shows_steps_per_second_time_left_and_real_steps_on_the_loss_axis():
    release = threading.Event()
    steps = [25, 50, 75, 100]  # reported every 25 steps: the chart must say 25..100, not 1..4
    job = _reporting_job(steps, release)
    try:
        at = open_page()
        at.session_state["css.train_job"] = job
        at.switch_page("pages/2_Generate.py").run()
        assert not at.exception
        line = next(c.value for c in at.caption if "steps/s" in c.value)
        assert "left at this rate" in line and "so far" in line
        rate = float(line.split(" steps/s")[0].replace(",", ""))
        assert rate > 0
        assert any("step 100 of 1,000" in p.proto.text for p in at.get("progress"))
        figure = json.loads(at.get("plotly_chart")[-1].proto.spec)
        x = figure["data"][0]["x"]  # plotly writes arrays as base64 with their dtype
        x = np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]) if "bdata" in x else x
        assert list(x) == steps
        assert figure["layout"]["xaxis"]["title"]["text"] == "training step"
    finally:
        release.set()
        job.stop()
        job.thread.join(10)


def test_an_unexpected_error_in_a_job_is_a_message_with_an_error_id_not_a_trace():
    def work(job: jobs.Job) -> None:
        raise KeyError("a value that might be a patient's")

    job = jobs.start("failing", 10, work, owner="panel-test")
    job.thread.join(10)
    assert "unexpected problem (KeyError)" in job.error and "error id" in job.error
    assert "patient" not in job.error and "Traceback" not in job.error


def test_an_unsafe_automatic_name_is_made_safe_and_a_typed_name_is_checked_inline():
    at = open_page()
    load_demo(at, "Demo: 1,821 synthetic ICU stays with ICD-9 diagnoses")
    assert "," in at.session_state["css.cohort"].name  # 'eICU diagnoses (icu_diagnoses.csv, full)'
    at.switch_page("pages/2_Generate.py").run()
    field = at.text_input(key=f"{TRAIN_KEY}_name")
    assert field.proto.placeholder == "EHRDiff on eICU diagnoses (icu_diagnoses.csv full)"
    start = at.button(key=TRAIN_KEY)
    assert not start.disabled
    field.set_value("ICD model, first try").run()
    [refusal] = [e.value for e in at.error if "cannot be used" in e.value]
    assert "'ICD model, first try' cannot name a model" in refusal
    assert at.button(key=TRAIN_KEY).disabled  # nothing starts under a refused name
    at.text_input(key=f"{TRAIN_KEY}_name").set_value("ICD model (first try)").run()
    assert not at.error and not at.button(key=TRAIN_KEY).disabled


@pytest.fixture
def stored_models(release_state):
    """Two models written into the store as the Generate page writes them: one stopped at step
    500 of 3,000, one that failed its fidelity check."""
    rng = np.random.default_rng(0)
    model = train_ehrdiff(
        code_table(rng.random((100, 2)) < 0.3),
        TrainConfig(units=(16,), embed_dim=8, steps=3, batch_size=16),
        device="cpu",
    ).model
    card = {"source": "toy codes", "cohort fingerprint": "f" * 64, "trained by": "local"}
    base = {"final_loss": 0.5, "train_seconds": 12.0}
    model.save(
        release_state / "models" / "stopped",
        data_card=card,
        training_command="python -m core.ehrdiff.train --steps 3000",
        metrics={**base, "steps_done": 500, "steps_planned": 3000, "stopped_early": True},
    )
    model.save(
        release_state / "models" / "weak",
        data_card=card,
        training_command="python -m core.ehrdiff.train --steps 400",
        metrics={
            **base,
            "steps_done": 400,
            "steps_planned": 400,
            "stopped_early": False,
            "fidelity_r2_vs_train": -2.4,
            "fidelity_check": "dimension-wise probability R²; 100 synthetic vs the training split",
        },
    )


def test_a_stopped_model_is_partial_and_a_weak_one_weak_on_the_models_page(stored_models):
    at = open_page("pages/5_Models.py")
    assert not at.exception
    table = next(d.value for d in at.dataframe if "quality" in d.value.columns)
    quality = table.set_index("name")["quality"]
    assert quality["stopped"] == "partial" and quality["weak"] == "weak"
    at.selectbox(key="models_pick").set_value("stopped").run()
    [partial] = [w.value for w in at.warning if "Partial model" in w.value]
    assert "stopped at step 500 of 3,000" in partial
    at.selectbox(key="models_pick").set_value("weak").run()
    [weak] = [w.value for w in at.warning if "Weak model" in w.value]
    assert "R² -2.40 against its training split, below 0.5" in weak
    # the card is text, not collapsed JSON
    assert not at.get("json")
    items = {i for t in at.table for i in t.value.index}
    assert {"steps done", "fidelity r2 vs train", "source", "trained by"} <= items


@pytest.mark.slow
def test_a_training_stopped_in_the_page_is_saved_as_partial_and_checked():
    at = open_page()
    load_demo(at, "Demo: 2,000 synthetic ICU stays")
    at.switch_page("pages/2_Generate.py").run()
    at.number_input(key="train_steps").set_value(50_000)
    at.selectbox(key="train_size").set_value("small")
    at.text_input(key=f"{TRAIN_KEY}_name").set_value("stopped early")
    at.button(key=TRAIN_KEY).click().run()
    job = at.session_state["css.train_job"]
    deadline = time.time() + 60
    while job.step < 10 and time.time() < deadline:
        time.sleep(0.2)
    job.stop()
    job.thread.join(120)
    assert job.error is None and job.result.stopped_early and job.step < 50_000
    at.run()
    at.run()
    assert job.note == "stopped early"
    assert any("Partial model" in w.value for w in at.warning)
    assert job.check is not None and np.isfinite(job.check.r2)
    models = open_page("pages/5_Models.py")
    table = next(d.value for d in models.dataframe if "quality" in d.value.columns)
    assert table.set_index("name").loc["stopped early", "quality"].startswith("partial")


def test_training_defaults_are_sized_to_the_device():
    import torch

    from ui import ehrdiff_view, training

    assert training.default_steps(torch.device("cpu"), 800, 3000) == 800
    assert training.default_steps(torch.device("cuda"), 800, 3000) == 3000
    assert training.duration(45) == "45 s" and training.duration(250) == "4 min 10 s"
    at = open_page()
    load_demo(at, "Demo: 2,000 synthetic ICU stays")
    at.switch_page("pages/2_Generate.py").run()  # CSS_DEVICE unset: this machine's CPU
    assert at.number_input(key="train_steps").value == ehrdiff_view.CPU_STEPS == 800


def test_a_started_training_takes_its_name_and_the_field_offers_a_fresh_one(monkeypatch):
    """After Start, the typed name is cleared (it is taken by the running training), so the
    page does not greet a finished training with 'already in the store'."""
    from ui import training

    started = []
    monkeypatch.setattr(jobs, "start", lambda title, *a, **k: started.append(title) or None)
    monkeypatch.setattr(training, "current_job", lambda: None)
    at = open_page()
    load_demo(at, "Demo: 1,821 synthetic ICU stays with ICD-9 diagnoses")
    at.switch_page("pages/2_Generate.py").run()
    at.text_input(key=f"{TRAIN_KEY}_name").set_value("my codes model").run()
    at.button(key=TRAIN_KEY).click().run()
    assert started == ["my codes model"]
    at.run()
    assert at.text_input(key=f"{TRAIN_KEY}_name").value == "" and not at.error


@pytest.mark.slow
def test_a_dp_training_is_offered_and_its_card_states_the_guarantee(monkeypatch):
    from ui import training

    captured, works = [], []
    real = training._store_when_done
    monkeypatch.setattr(
        training,
        "_store_when_done",
        lambda plan, name, card, command: (
            captured.append((plan, command)) or real(plan, name, card, command)
        ),
    )
    monkeypatch.setattr(jobs, "start", lambda title, total, work, **k: works.append(work))
    monkeypatch.setattr(training, "current_job", lambda: None)
    at = open_page()
    load_demo(at, "Demo: 2,000 synthetic ICU stays")
    at.switch_page("pages/2_Generate.py").run()
    assert not at.checkbox(key="train_dp").disabled  # one stay per patient in this demo
    at.checkbox(key="train_dp").check().run()
    at.number_input(key="train_dp_epsilon").set_value(2.5).run()
    at.number_input(key="train_steps").set_value(100)
    at.selectbox(key="train_size").set_value("small")
    at.text_input(key=f"{TRAIN_KEY}_name").set_value("private").run()
    assert at.checkbox(key="train_finetune").disabled  # DP starts from fresh weights
    at.button(key=TRAIN_KEY).click().run()
    assert not at.exception and not at.error
    ((plan, command),) = captured
    assert "--dp-epsilon 2.5" in command
    works[0](jobs.Job(title="private", total=100))  # the job's work, run here
    from ui.models import store

    card = store().get("private").manifest.data_card["differential_privacy"]
    assert 0 < card["epsilon"] <= card["target_epsilon"] == 2.5 and card["steps"] == 100
