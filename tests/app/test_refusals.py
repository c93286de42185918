"""Say no out loud (issue 31): a refused number names the limit in an inline message, and the
sampler's steps follow the sampler."""

from __future__ import annotations

import pytest

from core.diffusion.karras import SAMPLERS, SCORE_SAMPLERS
from core.ehrdiff.pipeline import MAX_RECORDS
from core.ehrpd.pipeline import MAX_PATIENTS
from core.flexgen.pipeline import MAX_RECORDS as FLEXGEN_MAX
from tests.app.pages import open_page


def _pick_model(at, *parts: str) -> None:
    box = at.selectbox(key="gen_model")
    box.set_value(next(o for o in box.options if all(p in o for p in parts))).run()


@pytest.mark.parametrize(
    ("model", "field", "unit", "limit"),
    [
        (("EHRDiff", "PhysioNet 2012"), "gen_n", "records", MAX_RECORDS),
        (("FLEXGEN",), "fg_n", "patients", FLEXGEN_MAX),
        (("EHRPD",), "ehrpd_n", "patients", MAX_PATIENTS),
    ],
)
def test_ten_million_is_refused_with_a_message_naming_the_limit(model, field, unit, limit):
    at = open_page("pages/2_Generate.py")
    _pick_model(at, *model)
    at.number_input(key=field).set_value(10_000_000)
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception
    [refusal] = [e.value for e in at.error if "over the limit" in e.value]
    assert f"**10,000,000 {unit} is over the limit:** at most {limit:,} {unit}" in refusal
    assert not at.session_state["css.synthetic_sets"]  # nothing was generated


def test_the_preselected_sampler_is_the_default_and_a_switch_resets_its_steps():
    at = open_page("pages/2_Generate.py")
    _pick_model(at, "EHRDiff", "PhysioNet 2012")
    sampler = at.selectbox(key="gen_sampler")
    labels = [SAMPLERS.get(s).label for s in SCORE_SAMPLERS]
    assert sampler.value == SCORE_SAMPLERS[0] and "default" in labels[0]
    assert not any("default" in label for label in labels[1:])
    assert at.number_input(key="gen_steps").value == SAMPLERS.get("dpmpp_2m").steps == 16
    at.number_input(key="gen_steps").set_value(10).run()
    at.selectbox(key="gen_sampler").set_value("heun").run()
    assert at.number_input(key="gen_steps").value == SAMPLERS.get("heun").steps == 32
    at.selectbox(key="gen_sampler").set_value("dpmpp_2m").run()
    assert at.number_input(key="gen_steps").value == 16


def test_too_many_sampler_steps_are_refused_with_the_limit():
    at = open_page("pages/2_Generate.py")
    _pick_model(at, "EHRDiff", "PhysioNet 2012")
    at.number_input(key="gen_steps").set_value(5000)
    next(b for b in at.button if b.label == "Generate").click().run()
    assert any(
        "**5,000 steps is over the limit:** at most 1,000 steps" in e.value for e in at.error
    )
    assert not at.session_state["css.synthetic_sets"]
