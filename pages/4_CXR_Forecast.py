"""CXR Forecast: a prior chest X-ray + the EHR since -> samples of the later X-ray (DDL-CXR)."""

import hashlib
import io
import zipfile

import pandas as pd
import streamlit as st

from core.cxr.data import empty_window
from core.cxr.ehr_window import read_ehr_window
from core.cxr.pipeline import MAX_SAMPLES, ForecastSettings
from core.data.images import read_radiograph
from core.device import select_device
from core.errors import CoreError
from core.metrics.images import psnr, ssim
from core.report import cxr_figures as cf
from ui import cxr, errors, state, widgets

with errors.guard("The CXR Forecast page"):  # nothing raw reaches the browser
    EXAMPLE_CHOICE = "Shipped example (real patient, CC BY 3.0)"
    ANCHORS = {"the prior image (anchored)": "prior", "pure noise": "noise"}

    widgets.device_sidebar()
    st.title("CXR Forecast")
    st.warning(
        "**Synthetic images, not for diagnosis.** Forecasts are samples from a generative model trained "
        "on about 30 patients at 64 x 64 pixels; they show what the model expects, not what the "
        "patient has.",
        icon=":material/warning:",
    )
    choices = cxr.forecaster_choices()
    if not choices:
        st.error(
            "No CXR forecaster: none ships with this installation and none is in the model store."
        )
        st.stop()
    choice = st.selectbox("Model", list(choices), key="cxr_model")
    try:
        model, description, checked = cxr.load_forecaster(
            choices[choice], str(select_device(state.device_preference()))
        )
    except CoreError as exc:
        widgets.show_error(exc, "Loading the forecaster")
        st.stop()
    lo, hi = model.gap_range_hours
    st.caption(
        f"{description} Trained on gaps of {lo / 24:g} to {hi / 24:g} days; EHR variables: "
        f"{', '.join(model.vocabulary.variables)}."
    )
    if checked.get("verdict"):
        st.info(
            f"**Validated on** {checked['validated_on']}. {checked['verdict']}",
            icon=":material/fact_check:",
        )
    example = cxr.example_provenance()

    left, right = st.columns(2)
    with left.container(border=True):
        st.markdown("#### Prior X-ray")
        prior_source = st.radio(
            "Prior image",
            [EXAMPLE_CHOICE, "Upload"],
            horizontal=True,
            key="cxr_prior_src",
        )
        prior = None
        truth = None
        prior_file = (
            None  # (how captions name it, sha256 of its bytes): what the forecast is bound to
        )
        try:
            if prior_source == "Upload":
                upload = st.file_uploader(
                    "PNG, JPEG or DICOM",
                    type=["png", "jpg", "jpeg", "dcm"],
                    key="cxr_prior_upload",
                    help=f"Up to {state.upload_limit_mb()} MB. DICOM patient details are never shown or kept.",
                )
                if upload is not None:
                    prior = read_radiograph(upload.getvalue(), upload.name)
                    prior_file = (f"`{upload.name}`", hashlib.sha256(upload.getvalue()).hexdigest())
            else:
                prior, truth = cxr.example_images()
                prior_file = (
                    f"`{cxr.EXAMPLE_PRIOR.name}`",
                    cxr.example_sha256(str(cxr.EXAMPLE_PRIOR)),
                )
                st.caption(
                    f"A real ICU patient's radiograph; the later one was taken "
                    f"{example['gap_hours'] / 24:g} days after it. The shipped model never saw this "
                    f"patient. {example['attribution']}."
                )
        except CoreError as exc:
            widgets.show_error(exc, "Reading the image")
        if prior is not None:
            for note in prior.notes:
                st.caption(f":material/info: {note}")
            st.image(
                model.autoencoder.prepare(prior.pixels), caption="as the model sees it", width=220
            )

    with right.container(border=True):
        st.markdown("#### EHR window since the prior")
        window_source = st.radio(
            "EHR window",
            ["Shipped example", "Upload", "None"],
            horizontal=True,
            key="cxr_window_src",
            help="Long CSV: hours (since the prior image), variable, value. Or wide: an 'hour' column plus one column per variable.",
        )
        window = None
        window_file = None  # (name, sha256), as for the prior
        try:
            if window_source == "Upload":
                wupload = st.file_uploader(
                    "CSV or Parquet", type=["csv", "parquet", "gz"], key="cxr_window_upload",
                    help=f"Up to {state.upload_limit_mb()} MB.",
                )  # fmt: skip
                if wupload is not None:
                    window = read_ehr_window(wupload.getvalue(), model.vocabulary, wupload.name)
                    window_file = (wupload.name, hashlib.sha256(wupload.getvalue()).hexdigest())
            elif window_source == "Shipped example":
                window = read_ehr_window(cxr.EXAMPLE_WINDOW, model.vocabulary)
                window_file = (
                    cxr.EXAMPLE_WINDOW.name,
                    cxr.example_sha256(str(cxr.EXAMPLE_WINDOW)),
                )
        except CoreError as exc:
            widgets.show_error(exc, "Reading the EHR window")
        if window is not None:
            for note in window.warnings:
                st.warning(note, icon=":material/info:")
            st.caption(f"{window.n_observations} usable observations up to {window.last_hour:g} h.")
            window_file = (
                f"`{window_file[0]}` ({window.n_observations} observations up to "
                f"{window.last_hour:g} h)",
                window_file[1],
            )
        else:
            window_file = None

    with st.form("cxr_settings", enter_to_submit=False):
        c1, c2, c3, c4 = st.columns(4)
        horizon_days = c1.number_input(
            "Forecast horizon (days after the prior)", min_value=0.0, max_value=365.0,
            value=example["gap_hours"] / 24.0, step=0.5, key="cxr_horizon",
            help="The shipped example's later image was taken this many days after the prior.",
        )  # fmt: skip
        n_samples = c2.slider("Samples", 1, MAX_SAMPLES, 4, key="cxr_samples")
        steps = c3.slider(
            "DDIM steps", 5, 100, 25, 5, key="cxr_steps", help="More steps: slower, slightly finer."
        )
        seed = int(c4.number_input("Seed", 0, 2**31 - 1, 0, key="cxr_seed"))
        use_ehr = st.checkbox("Condition on the EHR window", value=True, key="cxr_use_ehr")
        with st.expander("Sampler"):
            s1, s2, s3 = st.columns(3)
            default_anchor = next(k for k, v in ANCHORS.items() if v == model.sampler.anchor)
            anchor = s1.radio(
                "Start sampling from", list(ANCHORS), index=list(ANCHORS).index(default_anchor),
                key="cxr_anchor",
                help="Anchored: the prior's latent noised to a level set by the horizon (short gaps "
                "keep more of the prior). Pure noise: the original DDL-CXR sampler.",
            )  # fmt: skip
            eta = s2.select_slider(
                "DDIM eta", [0.0, 0.5, 1.0], value=model.sampler.eta, key="cxr_eta",
                help="0: deterministic given the seed; 1: DDPM-like noise at every step.",
            )  # fmt: skip
            threshold = s3.checkbox(
                "Threshold predicted latents", value=True, key="cxr_threshold",
                help="Dynamic thresholding to the training latents' range; keeps eta 0 from "
                "drifting into saturated blobs.",
            )  # fmt: skip
        submitted = st.form_submit_button("Forecast", type="primary", disabled=prior is None)

    inputs = cxr.forecast_inputs(
        choices[choice],
        prior_file,
        window_file,
        horizon_days,
        {
            "samples": n_samples,
            "DDIM steps": steps,
            "seed": seed,
            "EHR": "on" if use_ehr else "off",
            "start": ANCHORS[anchor],
            "eta": float(eta),
            "thresholding": "on" if threshold else "off",
        },
    )
    if submitted and prior is not None:
        settings = ForecastSettings(
            horizon_days * 24.0,
            n_samples,
            steps,
            eta=float(eta),
            seed=seed,
            use_ehr=use_ehr,
            anchor=ANCHORS[anchor],
            threshold=threshold,
        )
        bar = st.progress(0.0, text="Sampling")
        try:
            result = model.forecast(
                prior.pixels, window, settings, widgets.progress_callback(bar, "DDIM")
            )
            frame = window.frame if window is not None else empty_window()
            later = model.autoencoder.prepare(truth.pixels) if truth is not None else None
            cxr.keep_result(result, frame, later, inputs)
        except CoreError as exc:
            widgets.show_error(exc, "Forecast")
        finally:
            bar.empty()

    last = cxr.last_result(inputs)
    if last is not None and last.stale:  # never beside inputs it was not made from
        st.info(
            f"The forecast from prior {last.made_from['prior'].shown} is not shown: "
            + "; ".join(last.changes)
            + ". Press **Forecast** to make one from the inputs above.",
            icon=":material/update:",
        )
    elif last is not None:
        result, frame, later = last.value
        s = result.settings
        footer = example["attribution"] if later is not None else None
        made = last.made_from
        st.subheader("Forecast")
        st.caption(
            f"Forecast from prior {made['prior'].shown}, EHR window {made['window'].shown}, "
            f"horizon {made['horizon'].shown}, model {made['model'].shown}."
        )
        st.caption(
            f"{len(result.samples)} samples, {s.horizon_hours / 24:g} days ahead, {s.steps} DDIM steps, seed {s.seed}, "
            f"{'with' if s.use_ehr else 'without'} EHR, started from "
            f"{'the prior' if (s.anchor or model.sampler.anchor) == 'prior' else 'noise'}; {result.seconds:.1f} s."
        )
        for note in result.notes:
            st.caption(f":material/info: {note}")
        st.plotly_chart(
            cf.forecast_panels(
                result.prior,
                result.mean,
                result.uncertainty,
                result.change,
                cf.SYNTHETIC_LABEL,
                later,
            ),
            width="stretch",
        )
        if later is not None:
            st.dataframe(
                pd.DataFrame(
                    {
                        "compared with the true later X-ray": [
                            "forecast mean",
                            "carry-forward (prior)",
                        ],
                        "SSIM": [ssim(result.mean, later), ssim(result.prior, later)],
                        "PSNR dB": [psnr(result.mean, later), psnr(result.prior, later)],
                    }
                ),
                hide_index=True,
            )
            st.caption(footer)
        b1, b2 = st.columns([1, 2])
        with b1:
            k = (
                st.slider("Sample", 1, len(result.samples), 1, key="cxr_sample_idx")
                if len(result.samples) > 1
                else 1
            )
            st.plotly_chart(
                cf.single_image(result.samples[k - 1], f"Sample {k} (synthetic)"), width="content"
            )
        with b2:
            st.plotly_chart(cf.ehr_window_figure(frame, s.horizon_hours), width="stretch")

        def samples_zip() -> bytes:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                for i, img in enumerate(result.samples, start=1):
                    zf.writestr(
                        f"synthetic_forecast_sample_{i}.png", cf.labelled_png(img, footer=footer)
                    )
            return buf.getvalue()

        d1, d2, d3, d4 = st.columns(4)
        d1.download_button(
            "Forecast mean (PNG)",
            cf.labelled_png(result.mean, footer=footer),
            "synthetic_forecast_mean.png",
            "image/png",
        )
        d2.download_button(
            "Uncertainty map (PNG)", cf.heat_png(result.uncertainty, 0.0, float(result.uncertainty.max()), footer=footer),
            "synthetic_forecast_uncertainty.png", "image/png",
        )  # fmt: skip
        lim = float(abs(result.change).max())
        d3.download_button(
            "Change map (PNG)",
            cf.heat_png(result.change, -lim, lim, footer=footer),
            "synthetic_forecast_change.png",
            "image/png",
        )
        d4.download_button(
            "All samples (ZIP)", samples_zip, "synthetic_forecast_samples.zip", "application/zip"
        )

        # open while it holds an upload: its rerun must not fold the comparison away (issue 31)
        with st.expander(
            "Compare with the true later X-ray (optional)",
            expanded=st.session_state.get("cxr_truth") is not None,
        ):
            truth_upload = st.file_uploader(
                "Later X-ray", type=["png", "jpg", "jpeg", "dcm"], key="cxr_truth"
            )
            if truth_upload is not None:
                try:
                    truth = model.autoencoder.prepare(
                        read_radiograph(truth_upload.getvalue(), truth_upload.name).pixels
                    )
                except CoreError as exc:
                    widgets.show_error(exc, "Reading the later image")
                else:
                    st.image(truth, caption="true later image", width=220)
                    st.dataframe(
                        pd.DataFrame(
                            {
                                "forecast": ["DDL-CXR mean", "carry-forward (prior)"],
                                "SSIM": [ssim(result.mean, truth), ssim(result.prior, truth)],
                                "PSNR dB": [psnr(result.mean, truth), psnr(result.prior, truth)],
                            }
                        ),
                        hide_index=True,
                    )
