"""Models: every shipped and stored model with its card, verification, lineage and size; download,
upload, rename and delete stored models."""

import pandas as pd
import streamlit as st

from core.checkpoints import WEIGHTS_FILE, scan_checkpoints
from core.errors import CoreError
from core.loading import LOADERS
from core.registry import MODELS
from ui import auth, errors, jobs, models, widgets

with errors.guard("The Models page"):  # nothing raw reaches the browser
    widgets.device_sidebar()
    st.title("Models")
    st.caption(
        "Shipped models come with the app; stored models are the ones trained here (Generate page) or "
        "by the training commands into the model store, kept across sessions and restarts. Every "
        "model is checked against the sha256 in its manifest before it is listed as verified."
    )
    store = models.store()
    actor = auth.current_actor()
    job = jobs.latest(actor.subject if actor else "")
    if job is not None and job.running:
        st.info(
            f"Training **{job.title}**: step {job.step:,} of {job.total:,}"
            + (" (queued)" if job.queued else "")
            + ". It lands here when it finishes.",
            icon=":material/model_training:",
        )

    def lineage(card: dict) -> str:
        fp = card.get("cohort fingerprint") or card.get("fingerprint") or ""
        return f"{card.get('source', card.get('dataset', ''))} {str(fp)[:12]}".strip()

    st.subheader("Stored models")
    st.caption(f"Store: `{store.root}` (set `CSS_MODEL_ROOT` to move it).")
    for note in store.recovered:  # what opening the store finished, undid or cleaned up
        st.info(f"Interrupted write recovered: {note}", icon=":material/healing:")
    stored = store.list()
    if not stored:
        st.info(
            "No stored model yet: train one on the Generate page, or upload a model file below."
        )
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "name": m.name,
                        "family": m.family or "?",
                        "state": "verified" if m.ok else m.detail,
                        # partial (stopped early) or weak (fidelity check): ui.models.quality_notes
                        "quality": models.quality_label(m.manifest.metrics) if m.manifest else "",
                        "created": m.manifest.created if m.manifest else "",
                        "trained by": (
                            m.manifest.data_card.get("trained by", "") if m.manifest else ""
                        ),
                        "trained on": lineage(m.manifest.data_card) if m.manifest else "",
                        "size (MB)": round(m.size_bytes / 1e6, 2),
                    }
                    for m in stored
                ]
            ),
            hide_index=True,
            key="models_stored",
        )
        name = st.selectbox("Stored model", [m.name for m in stored], key="models_pick")
        chosen = next(m for m in stored if m.name == name)
        if chosen.note:  # e.g. training data removed from a manifest of an earlier version
            st.info(chosen.note, icon=":material/cleaning_services:")
        if chosen.manifest is not None:
            models.model_card(chosen.manifest, f"Stored model `{chosen.name}` ({chosen.family}).")
        else:
            st.error(f"**{chosen.name}** does not verify: {chosen.detail}")
        if auth.steward_only("Downloading, renaming or deleting a stored model"):
            c1, c2, c3 = st.columns(3)
            if chosen.ok:
                c1.download_button(
                    "Download model (.zip)",
                    lambda: store.export_zip(chosen.name),
                    f"{chosen.name}.zip",
                    "application/zip",
                    on_click="ignore",  # deferred file: a rerun would race its fetch
                    key="models_download",
                )
            new_name = c2.text_input("New name", chosen.name, key="models_new_name")
            if c2.button("Rename", key="models_rename", disabled=new_name.strip() == chosen.name):
                try:
                    store.rename(chosen.name, new_name)
                    st.rerun()
                except CoreError as exc:
                    widgets.show_error(exc, "Renaming the model")
            if c3.button("Delete…", key="models_delete"):
                st.session_state["css.models_confirm_delete"] = chosen.name
            if st.session_state.get("css.models_confirm_delete") == chosen.name:
                st.warning(f"Delete **{chosen.name}** from the store? This cannot be undone.")
                d1, d2 = st.columns(2)
                if d1.button("Yes, delete it", type="primary", key="models_delete_yes"):
                    store.delete(chosen.name)
                    st.session_state.pop("css.models_confirm_delete")
                    st.toast(f"Deleted {chosen.name}")
                    st.rerun()
                if d2.button("Cancel", key="models_delete_no"):
                    st.session_state.pop("css.models_confirm_delete")
                    st.rerun()

    if auth.is_steward():
        upload = st.file_uploader(
            "Upload a model file (.zip from Download)", type=["zip"], key="models_upload"
        )
        if upload is not None and st.session_state.get("css.models_uploaded") != upload.file_id:
            try:
                added = store.import_zip(upload.getvalue(), set(LOADERS))
                st.session_state["css.models_uploaded"] = upload.file_id
                st.success(f"Added **{added.name}** ({added.family}): verified.")
            except CoreError as exc:
                widgets.show_error(exc, "Reading the model file")

    st.subheader("Shipped models")
    status = {c.folder: c for c in scan_checkpoints(models.CHECKPOINTS)}
    rows = []
    for spec in MODELS:
        ck = status.get(spec.checkpoint or "")
        rows.append(
            {
                "model": spec.title,
                "family": spec.family,
                "state": "not shipped" if ck is None else ("verified" if ck.ok else ck.detail),
                "trained on": lineage(ck.manifest.data_card) if ck and ck.manifest else "",
                "size (MB)": round(
                    (models.CHECKPOINTS / spec.checkpoint / WEIGHTS_FILE).stat().st_size / 1e6, 2
                )
                if ck and ck.ok
                else None,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="models_shipped")
    for spec in MODELS:
        ck = status.get(spec.checkpoint or "")
        if ck is not None and ck.manifest is not None:
            with st.container():
                st.markdown(f"**{spec.title}**")
                models.model_card(ck.manifest, spec.description)
