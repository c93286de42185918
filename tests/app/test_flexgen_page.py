"""FLEXGEN-EHR in the app: shipped checkpoint -> complete patients; training on the demo cohort
with missing modalities; the Review page compares FLEXGEN and EHRDiff sets side by side."""

import time

import pandas as pd
import pytest

from core.flexgen.alignment import PAPER_METHOD
from core.flexgen.missing import HANDLING
from core.flexgen.train import FlexGenConfig
from tests.app.pages import load_demo, open_page


def pick_model(at, words: str) -> None:
    box = at.selectbox(key="gen_model")
    box.set_value(next(o for o in box.options if words in o)).run()


def generate_patients(at, n: int, name: str) -> None:
    at.number_input(key="fg_n").set_value(n)
    at.text_input(key="fg_name").set_value(name)
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def test_shipped_flexgen_generates_complete_patients_with_series_and_downloads():
    at = open_page("pages/2_Generate.py")
    pick_model(at, "FLEXGEN-EHR")
    generate_patients(at, 40, "fg")
    synth = at.session_state["css.synthetic_sets"]["fg"]
    cohort = synth.cohort
    assert cohort.n_records == 40 and cohort.temporal.values.shape == (40, 48, 37)
    assert cohort.static.notna().any(axis=1).all()  # every patient has a static row
    static = at.dataframe[0].value
    assert list(static.columns[:3]) == ["record_id", "Age", "Gender"] and len(static) == 40
    labels = {d.label for d in at.get("download_button")}
    assert labels == {"Static part (CSV)", "Series, long format (CSV)", "Both in one Parquet"}
    charts = at.get("plotly_chart")
    assert charts, "the per-patient series plot is shown"
    assert any("not real patients" in c.value for c in at.caption)


@pytest.mark.slow
def test_flexgen_trains_in_the_page_on_the_demo_with_missing_modalities():
    at = open_page("pages/1_Cohort.py")
    load_demo(at, "Demo: 800 synthetic ICU patients")
    cohort = at.session_state["css.cohort"]
    has_static = cohort.static.notna().any(axis=1)
    has_series = cohort.temporal.mask.any(axis=(1, 2))
    assert (~has_static).sum() == 80 and (~has_series).sum() == 80
    at.switch_page("pages/2_Generate.py").run()
    at.radio(key="train_family").set_value("FLEXGEN-EHR").run()
    at.number_input(key="fg_train_epochs").set_value(1)
    at.number_input(key="fg_train_iters").set_value(100)
    handling = at.selectbox(key="fg_train_missing")
    assert handling.value == FlexGenConfig.variant == "knn" and len(handling.options) == len(
        HANDLING
    )
    handling.set_value(PAPER_METHOD)  # the paper's method stays selectable
    next(b for b in at.button if b.label == "Start training").click().run()
    job = at.session_state["css.train_job"]
    deadline = time.time() + 240
    while job.running and time.time() < deadline:
        time.sleep(0.5)
    at.run()
    assert not job.running and job.error is None, job.error
    model = job.result.model
    alignment = model.training["alignment"]
    assert alignment["method"] == PAPER_METHOD and alignment["records_static"] > 0
    at.run()
    t = model.training
    lacks_s, lacks_t = (
        t["records"] - t["records_with_static"],
        t["records"] - t["records_with_temporal"],
    )
    assert lacks_s > 0 and lacks_t > 0
    note = f"{lacks_s} missing static row(s) and {lacks_t} missing series imputed in latent space"
    assert any(note in c.value for c in at.caption), [c.value for c in at.caption]
    at.run()
    pick_model(at, job.title)
    generate_patients(at, 20, "trained here")
    assert at.session_state["css.synthetic_sets"]["trained here"].cohort.n_records == 20


@pytest.mark.slow
def test_review_compares_flexgen_and_ehrdiff_side_by_side():
    at = open_page("pages/1_Cohort.py")
    load_demo(at, "Demo: 2,000 synthetic ICU stays")
    at.switch_page("pages/2_Generate.py").run()
    pick_model(at, "FLEXGEN-EHR")
    generate_patients(at, 300, "FLEXGEN")
    pick_model(at, "EHRDiff: ICU stays")
    at.number_input(key="gen_n").set_value(300)
    at.number_input(key="gen_steps").set_value(6)
    at.text_input(key="gen_name").set_value("EHRDiff")
    next(b for b in at.button if b.label == "Generate").click().run()
    at.switch_page("pages/3_Review.py").run()
    at.multiselect(key="review_sets").set_value(["FLEXGEN", "EHRDiff"]).run()
    at.number_input(key="review_boot").set_value(20)
    at.button(key="review_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    summary: pd.DataFrame = at.dataframe[0].value
    assert {"FLEXGEN", "EHRDiff"} <= set(summary.columns)
    r2 = summary.set_index("metric").loc["Dimension-wise probability R^2"]
    assert 0.5 < r2["FLEXGEN"] <= 1.0 and 0.5 < r2["EHRDiff"] <= 1.0
