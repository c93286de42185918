"""Generate page through AppTest: shipped checkpoints, demo cohort, in-browser training."""

import shutil
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.data.io import read_table
from core.data.records import ehr_table, table_from_frame
from core.report.export import export_files
from tests.app.pages import ROOT, load_demo, open_page
from ui import models


def generate(at: AppTest, n: int = 200, steps: int = 4, name: str = "") -> None:
    at.number_input(key="gen_n").set_value(n)
    at.number_input(key="gen_steps").set_value(steps)
    if name:
        at.text_input(key="gen_name").set_value(name)
    next(b for b in at.button if b.label == "Generate").click().run()


def test_shipped_model_generates_without_any_cohort():
    at = open_page("pages/2_Generate.py")
    box = at.selectbox(key="gen_model")
    assert any("PhysioNet 2012" in o for o in box.options) and any("eICU" in o for o in box.options)
    box.set_value(next(o for o in box.options if "eICU" in o)).run()
    generate(at, name="codes")
    assert not at.exception and not at.error
    sets = at.session_state["css.synthetic_sets"]
    assert list(sets) == ["codes"] and sets["codes"].table.n_records == 200
    frame = at.dataframe[0].value
    assert frame.columns[0] == "record_id" and len(frame) == 200
    assert {d.label for d in at.get("download_button")} == {"Download CSV", "Download Parquet"}
    assert any("Synthetic data: not real patients" in c.value for c in at.caption)


@pytest.mark.slow
def test_demo_cohort_train_then_generate_in_the_page():
    at = open_page("pages/1_Cohort.py")
    load_demo(at, "Demo: 2,000 synthetic ICU stays")
    at.switch_page("pages/2_Generate.py").run()
    at.number_input(key="train_steps").set_value(100)
    at.selectbox(key="train_size").set_value("small")
    next(b for b in at.button if b.label == "Start training").click().run()
    job = at.session_state["css.train_job"]
    deadline = time.time() + 120
    while job.running and time.time() < deadline:
        time.sleep(0.5)
    at.run()
    assert not job.running and job.error is None and len(job.result.losses) == 100
    at.run()
    assert job.note == job.title  # saved in the model store under its name
    at.selectbox(key="gen_model").set_value(f"{job.title} (stored)").run()
    assert any("Trained **" in s.value and "model store" in s.value for s in at.success)
    generate(at, n=150, steps=3)
    assert not at.exception and not at.error
    [synth] = at.session_state["css.synthetic_sets"].values()
    assert synth.table.labels is not None and synth.table.columns[:2] == ("Age", "Gender")


def test_shipped_physionet_model_fits_demo_stays_and_plots_against_them():
    at = open_page("pages/1_Cohort.py")
    load_demo(at, "Demo: 2,000 synthetic ICU stays")
    at.switch_page("pages/2_Generate.py").run()
    box = at.selectbox(key="gen_model")
    box.set_value(next(o for o in box.options if "PhysioNet" in o)).run()
    assert not any("does not fit this model" in c.value for c in at.caption)
    at.slider(key="gen_mix").set_value(0.5)
    generate(at)
    assert not at.exception and not at.error
    [(name, synth)] = at.session_state["css.synthetic_sets"].items()
    assert 0.35 < (synth.table.labels == 1).mean() < 0.65
    # Its downloads read back against the cohort it was made for, as the Review reads an upload:
    # the model names its classes survived/died, the demo file 0/1.
    cohort = at.session_state["css.cohort"]
    real = ehr_table(cohort)
    assert synth.table.label_classes == real.label_classes == ("0", "1")
    for f in export_files(name, synth)[:2]:
        back = table_from_frame(read_table(f.build(), f.filename), real, f.filename)
        assert (back.labels == synth.table.labels).all() and back.n_records == 200


def test_tampered_checkpoint_is_refused_in_the_page(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "checkpoints", tmp_path / "checkpoints")
    weights = tmp_path / "checkpoints" / "ehrdiff-eicu-icd9" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    monkeypatch.setattr(models, "CHECKPOINTS", tmp_path / "checkpoints")
    st.cache_resource.clear()
    try:
        at = open_page("pages/2_Generate.py")
        box = at.selectbox(key="gen_model")
        box.set_value(next(o for o in box.options if "eICU" in o)).run()
        assert not at.exception
        assert "does not match its manifest" in at.error[0].value
    finally:
        st.cache_resource.clear()


def test_page_without_cohort_explains_what_to_do():
    at = open_page("pages/2_Generate.py")
    assert any("Load a cohort on the Cohort page first" in i.value for i in at.info)


def test_distilled_sampler_of_a_shipped_model():
    at = open_page("pages/2_Generate.py")
    box = at.selectbox(key="gen_model")
    box.set_value(next(o for o in box.options if "PhysioNet 2012" in o and "EHRDiff" in o)).run()
    sampler = at.selectbox(key="gen_sampler")
    assert "Distilled (1 or 2 evaluations)" in sampler.options  # AppTest lists the labels
    sampler.set_value("distilled").run()
    assert not at.exception and at.selectbox(key="gen_evals").options == ["1", "2"]
    at.number_input(key="gen_n").set_value(300)
    at.selectbox(key="gen_evals").set_value(2)
    at.text_input(key="gen_name").set_value("fast")
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception and not at.error
    synth = at.session_state["css.synthetic_sets"]["fast"]
    assert synth.model_id == "ehrdiff-physionet2012-distilled" and synth.network_evaluations == 2
    assert synth.table.n_records == 300
    assert any("Distilled from ehrdiff-physionet2012" in c.value for c in at.caption)


def test_a_shown_set_says_when_the_model_or_settings_changed_since_it_was_generated():
    """Issue 28: a page's result must not pose as the result of inputs it was not made from."""
    at = open_page("pages/2_Generate.py")
    box = at.selectbox(key="gen_model")
    physionet = next(o for o in box.options if "PhysioNet 2012" in o and "distilled" not in o)
    box.set_value(physionet).run()
    generate(at, n=50, steps=2, name="first")
    assert not at.exception and not at.error
    stale = [i.value for i in at.info if "from the previous settings" in i.value]
    assert stale == []
    at.selectbox(key="gen_sampler").set_value("heun").run()
    [stale] = [i.value for i in at.info if "from the previous settings" in i.value]
    assert stale.startswith("**first** is from the previous settings")
    assert "the sampler changed since it was generated (was dpmpp_2m, now heun)" in stale
    at.selectbox(key="gen_sampler").set_value("dpmpp_2m").run()  # back to the sampler, but a
    [stale] = [i.value for i in at.info if "from the previous settings" in i.value]  # switch
    assert "the sampler" not in stale  # resets the steps to the sampler's default (issue 31)
    assert "the steps changed since it was generated (was 2, now 16)" in stale
    eicu = next(o for o in box.options if "eICU" in o and "distilled" not in o)
    at.selectbox(key="gen_model").set_value(eicu).run()
    [stale] = [i.value for i in at.info if "from the previous settings" in i.value]
    assert f"the model changed since it was generated (was `{physionet}`, now `{eicu}`)" in stale
    generate(at, n=50, steps=2, name="second")  # the new set is shown, made with these
    assert at.selectbox(key="gen_view").value == "second"
    assert not any("from the previous settings" in i.value for i in at.info)
