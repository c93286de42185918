"""Clinical Synthesis Studio: entry point (navigation) and landing page."""

import logging
import os
from pathlib import Path

import streamlit as st

from core.checkpoints import scan_checkpoints
from core.device import describe_device, select_device
from core.errors import CoreError
from core.registry import MODELS
from core.release.signing import key_id
from ui import auth, errors, state, widgets
from ui.review import release as ui_release

ROOT = Path(__file__).resolve().parent
# Core logs carry counts and timings only, never patient values; CSS_LOG_LEVEL=INFO shows them.
logging.basicConfig(
    level=os.environ.get("CSS_LOG_LEVEL", "WARNING").upper(),
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)


def home() -> None:
    """What the app does, where to start, and the state of this installation."""
    widgets.device_sidebar()
    st.title("Clinical Synthesis Studio")
    st.markdown(
        "Generate synthetic patient records with diffusion models, forecast a later chest X-ray "
        "from a prior one and the EHR since, and review **fidelity, utility and privacy** side by "
        "side before any release. Everything runs on this server; nothing you load leaves it or is "
        "written to disk unless you export it."
    )
    c1, c2, c3, c4 = st.columns(4)
    with c1.container(border=True):
        st.markdown("#### 1. Cohort")
        st.write(
            "Load PhysioNet 2012, eICU or MIMIC diagnoses, or your own tables; "
            "check them and split by patient."
        )
        st.page_link(COHORT_PAGE, label="Open Cohort", icon=":material/groups:")
    with c2.container(border=True):
        st.markdown("#### 2. Generate")
        st.write(
            "Pick a shipped EHRDiff or FLEXGEN-EHR model or train one on your cohort, then generate records or complete patients with 48-hour series."
        )
        st.page_link(GENERATE_PAGE, label="Open Generate", icon=":material/auto_awesome:")
    with c3.container(border=True):
        st.markdown("#### 3. Review")
        st.write("Compare synthetic sets with the real training and holdout data; export a report.")
        st.page_link(REVIEW_PAGE, label="Open Review", icon=":material/fact_check:")
    with c4.container(border=True):
        st.markdown("#### CXR Forecast")
        st.write(
            "Forecast a later chest X-ray from a prior one and the labs since; see samples and uncertainty."
        )
        st.page_link(CXR_PAGE, label="Open CXR Forecast", icon=":material/radiology:")

    cohort = state.get_cohort()
    if cohort is not None:
        st.success(f"Session cohort: **{cohort.name}**, {cohort.n_records:,} records.")

    st.divider()
    st.subheader("System status")
    s1, s2 = st.columns(2)
    with s1:
        try:
            device = select_device(state.device_preference())
            st.write(f"Compute device: **{describe_device(device)}**")
        except CoreError as exc:
            st.warning(str(exc))
        st.write(f"Upload limit: **{state.upload_limit_mb()} MB** per file.")
        st.write(
            "Sign-in: **"
            + ("on (OpenID Connect)" if auth.sign_in_configured() else "off (one local user)")
            + "**"
        )
        try:
            key = ui_release.signing_key()
            st.write(f"Release signing key: **{key_id(key.public_key())}** (Ed25519)")
        except CoreError as exc:
            st.warning(f"Release signing key: {exc}")
    with s2:
        # One count: the registered models, each with its checkpoint's state; a checkpoint no
        # model names (a training component such as the CXR VAE) is listed apart, not counted.
        checkpoints = {ck.folder: ck for ck in scan_checkpoints(ROOT / "checkpoints")}
        st.write(f"Registered models: **{len(MODELS)}**")
        for spec in MODELS:
            ck = checkpoints.get(spec.checkpoint or "")
            if ck is None:
                st.write(f":material/help: {spec.title}: checkpoint not shipped")
                continue
            icon = ":material/verified:" if ck.ok else ":material/gpp_bad:"
            st.write(f"{icon} {spec.title} (`{ck.folder}`): {ck.detail}")
        named = {spec.checkpoint for spec in MODELS}
        others = [ck for folder, ck in checkpoints.items() if folder not in named]
        if others:
            st.caption(
                "Also shipped, not offered as a model (training components): "
                + "; ".join(f"`{ck.folder}` ({ck.detail})" for ck in others)
            )


st.set_page_config(
    page_title="Clinical Synthesis Studio", page_icon=":material/stethoscope:", layout="wide"
)
COHORT_PAGE = st.Page("pages/1_Cohort.py", title="Cohort", icon=":material/groups:")
GENERATE_PAGE = st.Page("pages/2_Generate.py", title="Generate", icon=":material/auto_awesome:")
REVIEW_PAGE = st.Page("pages/3_Review.py", title="Review", icon=":material/fact_check:")
CXR_PAGE = st.Page("pages/4_CXR_Forecast.py", title="CXR Forecast", icon=":material/radiology:")
MODELS_PAGE = st.Page("pages/5_Models.py", title="Models", icon=":material/deployed_code:")
LEDGER_PAGE = st.Page("pages/6_Ledger.py", title="Ledger", icon=":material/receipt_long:")
with errors.guard("Sign-in"):
    auth.require_sign_in()
page = st.navigation(
    [
        st.Page(home, title="Home", icon=":material/home:", default=True),
        COHORT_PAGE,
        GENERATE_PAGE,
        REVIEW_PAGE,
        CXR_PAGE,
        MODELS_PAGE,
        *([LEDGER_PAGE] if auth.is_steward() else []),
    ]
)
with errors.guard(f"The {page.title} page"):  # every page runs in here
    page.run()
