"""Visit sequences through the real pages (AppTest): load eICU visits, generate with the shipped
EHRPD model (timeline, MEDS download), review sequences against a visit cohort."""

from __future__ import annotations

import numpy as np
import pytest

from core.ehrpd.pipeline import SequenceSettings
from core.ehrpd.train import EHRPDTrainConfig, train_ehrpd
from tests.app.pages import open_page, upload_eicu_visits
from tests.core.ehrpd.planted import planted_chain

TIMEOUT = 180


def test_cohort_page_loads_eicu_visits_and_shows_sequences():
    at = open_page("pages/1_Cohort.py", TIMEOUT)
    upload_eicu_visits(at)
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Patients"] == "2" and metrics["Visits"] == "4"
    assert any("across hospital stays" in c.value for c in at.caption)
    assert at.session_state["css.visits"].n_visits == 4


def test_generate_page_makes_sequences_with_the_shipped_model():
    at = open_page("pages/2_Generate.py", TIMEOUT)
    box = at.selectbox(key="gen_model")
    box.set_value(next(o for o in box.options if "EHRPD" in o)).run()
    at.number_input(key="ehrpd_n").set_value(40)
    at.number_input(key="ehrpd_steps").set_value(5)
    at.text_input(key="ehrpd_name").set_value("sequences")
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception and not at.error
    synth = at.session_state["css.synthetic_sets"]["sequences"]
    assert synth.visits.n_patients == 40 and synth.table.n_records == 40
    assert any("visits from" in c.value for c in at.caption)
    labels = {d.label for d in at.get("download_button")}
    assert {"MEDS (Parquet)", "Long CSV"} <= labels


@pytest.mark.slow
def test_review_compares_sequences_with_the_visit_cohort():
    real = planted_chain(300, seed=0)
    model = train_ehrpd(
        real.subset(real.split(0.2, 0).train),
        EHRPDTrainConfig(steps=150, d_model=32, denoiser_hidden=64),
        device="cpu",
    ).model
    synth = model.generate(SequenceSettings(n=200, seed=0, steps=5))
    at = open_page(timeout=TIMEOUT)
    at.session_state["css.visits"] = real
    at.session_state["css.visit_split"] = real.split(0.2, 0)
    at.session_state["css.last_loaded"] = "visits"
    at.session_state["css.synthetic_sets"] = {"EHRPD": synth}
    at.switch_page("pages/3_Review.py").run()
    assert not at.exception
    at.multiselect(key="review_sets").set_value(["EHRPD"]).run()
    at.number_input(key="review_boot").set_value(20)
    next(b for b in at.button if b.label == "Run review").click().run()
    assert not at.exception and not at.error
    summary = at.dataframe[0].value.set_index("id")
    for metric_id in ("visits_per_patient_w1", "gap_ks", "consecutive_cooccurrence_r2"):
        assert np.isfinite(summary.loc[metric_id, "EHRPD"]), metric_id
    assert "mia_accuracy" in summary.index  # record-level privacy on the patients' code bags
