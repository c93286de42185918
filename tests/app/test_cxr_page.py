"""CXR Forecast page through AppTest: shipped example -> forecast with uncertainty; bad settings."""

from streamlit.testing.v1 import AppTest

from tests.app.pages import open_page
from ui import cxr

PAGE = "pages/4_CXR_Forecast.py"


def open_cxr_page() -> AppTest:
    at = open_page(PAGE)
    assert not at.error
    return at


def forecast(at: AppTest, days: float, samples: int = 4, steps: int = 10) -> None:
    at.number_input(key="cxr_horizon").set_value(days)
    at.slider(key="cxr_samples").set_value(samples)
    at.slider(key="cxr_steps").set_value(steps)
    next(b for b in at.button if b.label == "Forecast").click().run()


def test_example_forecast_shows_images_uncertainty_and_label():
    at = open_cxr_page()
    assert any("not for diagnosis" in w.value for w in at.warning)
    forecast(at, 3.0)
    assert not at.exception and not at.error
    result, window, later = at.session_state[cxr.RESULT]
    assert result.samples.shape[0] == 4 and result.uncertainty.max() > 0
    assert result.settings.use_ehr and len(window) > 0
    assert later is not None and later.shape == result.mean.shape  # the example's true image
    assert len(at.get("plotly_chart")) >= 3  # panels, sample browser, EHR window
    assert any("4 samples, 3 days ahead" in c.value for c in at.caption)
    assert any("started from the prior" in c.value for c in at.caption)
    assert any("CC BY 3.0" in c.value for c in at.caption)  # attribution of the real example
    compared = at.dataframe[0].value
    assert list(compared["compared with the true later X-ray"]) == [
        "forecast mean",
        "carry-forward (prior)",
    ]
    assert any("Validated on" in i.value for i in at.info)
    at.slider(key="cxr_sample_idx").set_value(3).run()
    assert not at.exception


def test_example_horizon_defaults_to_the_true_gap_and_sampler_choices_apply():
    at = open_cxr_page()
    days = cxr.example_provenance()["gap_hours"] / 24
    assert at.number_input(key="cxr_horizon").value == days
    at.radio(key="cxr_anchor").set_value("pure noise")
    at.select_slider(key="cxr_eta").set_value(0.0)
    forecast(at, days, samples=2, steps=5)
    assert not at.exception and not at.error
    result, _, _ = at.session_state[cxr.RESULT]
    assert result.settings.anchor == "noise" and result.settings.eta == 0.0
    assert result.samples.min() >= 0 and result.samples.max() <= 1


def test_bad_horizons_are_explained_and_the_page_stays_alive():
    at = open_cxr_page()
    forecast(at, 0.0, samples=1, steps=5)
    assert any("more than 0 hours" in e.value for e in at.error)
    forecast(at, 200.0, samples=1, steps=5)
    assert any("beyond what this model was trained on" in e.value for e in at.error)
    assert cxr.RESULT not in at.session_state
    forecast(at, 2.0, samples=1, steps=5)  # still usable afterwards
    assert not at.error and cxr.RESULT in at.session_state


def test_forecast_without_ehr():
    at = open_cxr_page()
    at.radio(key="cxr_window_src").set_value("None").run()
    forecast(at, 2.0, samples=2, steps=5)
    assert not at.exception and not at.error
    result, _, _ = at.session_state[cxr.RESULT]
    assert any("no usable EHR" in n for n in result.notes)
