"""CXR Forecast page through AppTest: shipped example -> forecast with uncertainty; bad settings."""

import pytest
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


@pytest.mark.slow
def test_example_forecast_shows_images_uncertainty_and_label():
    at = open_cxr_page()
    assert any("not for diagnosis" in w.value for w in at.warning)
    forecast(at, 3.0)
    assert not at.exception and not at.error
    result, window, later = at.session_state[cxr.RESULT][0]  # (result, inputs)
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
    result, _, _ = at.session_state[cxr.RESULT][0]  # (result, inputs)
    assert result.settings.anchor == "noise" and result.settings.eta == 0.0
    assert result.samples.min() >= 0 and result.samples.max() <= 1


@pytest.mark.slow
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
    result, _, _ = at.session_state[cxr.RESULT][0]  # (result, inputs)
    assert any("no usable EHR" in n for n in result.notes)


def upload_prior(at: AppTest, name: str = "xray_0012.png", seed: int = 1) -> None:
    from tests.core.cxr.fixtures import phantom, png_bytes

    at.radio(key="cxr_prior_src").set_value("Upload").run()
    at.file_uploader(key="cxr_prior_upload").set_value(
        (name, png_bytes(phantom(96, seed)), "image/png")
    ).run()
    assert not at.exception and not at.error


def shown_forecast(at: AppTest) -> bool:
    return "Forecast" in [h.value for h in at.subheader]


def test_a_new_prior_never_sits_beside_the_previous_forecast_or_its_true_later_image():
    """Issue 28: the previous patient's forecast, and the example's true later X-ray, stayed
    beside a newly uploaded prior."""
    at = open_cxr_page()
    forecast(at, 2.0, samples=1, steps=5)
    assert shown_forecast(at)
    caption = next(c.value for c in at.caption if c.value.startswith("Forecast from prior"))
    assert "prior `prior.png`" in caption and "EHR window `ehr_window.csv`" in caption
    assert "horizon 2 days" in caption and "model `ddlcxr-hannover-64`" in caption
    upload_prior(at)
    assert not shown_forecast(at)
    assert not any("compared with the true later X-ray" in d.value.columns for d in at.dataframe)
    assert not at.get("download_button")  # no download of the other patient's forecast
    notice = next(i.value for i in at.info if "not shown" in i.value)
    assert "the prior image changed since this forecast (was `prior.png`, now `xray_0012.png`)" in (
        notice
    )
    forecast(at, 2.0, samples=1, steps=5)
    assert shown_forecast(at) and not at.error
    caption = next(c.value for c in at.caption if c.value.startswith("Forecast from prior"))
    assert "prior `xray_0012.png`" in caption
    assert not at.dataframe  # no true later image for an uploaded prior
    assert at.session_state[cxr.RESULT] is not None


def test_returning_to_the_page_does_not_show_the_old_forecast_beside_reset_inputs():
    at = open_cxr_page()
    upload_prior(at)
    forecast(at, 2.0, samples=1, steps=5)
    assert shown_forecast(at)
    at.switch_page("pages/1_Cohort.py").run()
    at.switch_page(PAGE).run()
    assert at.radio(key="cxr_prior_src").value != "Upload"  # the page's inputs were reset
    assert not shown_forecast(at)
    assert any("was `xray_0012.png`, now `prior.png`" in i.value for i in at.info)


@pytest.mark.slow
def test_a_changed_horizon_or_window_hides_the_forecast_until_it_is_made_again():
    at = open_cxr_page()
    forecast(at, 2.0, samples=1, steps=5)
    forecast(at, 200.0, samples=1, steps=5)  # refused: the old forecast must not pose as its
    assert any("beyond what this model was trained on" in e.value for e in at.error)
    assert not shown_forecast(at)
    assert any(
        "the horizon changed since this forecast (was 2 days, now 200 days)" in i.value
        for i in at.info
    )
    forecast(at, 2.0, samples=1, steps=5)
    at.radio(key="cxr_window_src").set_value("None").run()
    assert not shown_forecast(at)
    assert any("the EHR window changed since this forecast" in i.value for i in at.info)


@pytest.mark.slow
def test_an_uploaded_later_image_keeps_its_comparison_open():
    """Issue 31: the comparison with an uploaded true later image stayed folded after the
    upload's rerun; it is open while it holds one."""
    import io

    import numpy as np
    from PIL import Image

    at = open_cxr_page()
    forecast(at, 3.0, samples=2, steps=4)
    box = next(e for e in at.expander if "Compare with the true later" in e.label)
    assert not box.proto.expanded
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(
        buf, format="PNG"
    )
    at.file_uploader(key="cxr_truth").set_value(("later.png", buf.getvalue(), "image/png")).run()
    assert not at.exception
    box = next(e for e in at.expander if "Compare with the true later" in e.label)
    assert box.proto.expanded
    assert any("DDL-CXR mean" in list(d.value.iloc[:, 0]) for d in at.dataframe)
