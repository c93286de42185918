"""Ledger: every release, who made it and how it was judged; check a manifest someone sends."""

import json

import pandas as pd
import streamlit as st
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from core.errors import CoreError
from core.release.signing import key_id, manifest_json, public_pem, verify_manifest
from core.report import export
from ui import auth, errors, widgets
from ui.review import release as ui_release

with errors.guard("The Ledger page"):  # nothing raw reaches the browser
    widgets.device_sidebar()
    st.title("Ledger")
    st.caption(
        "Every release made on this server: who released which synthetic set, when, from which model "
        "and cohort, with the gate's verdict and any override reason. Rows are only ever added, "
        "each holding the hash of the one before it, with the chain's head signed by the server."
    )
    if not auth.steward_only("The ledger"):
        st.stop()

    try:
        ledger = ui_release.ledger()
        key = ui_release.signing_key()
    except CoreError as exc:
        widgets.show_error(exc, "Opening the ledger")
        st.stop()

    c1, c2 = st.columns(2)
    c1.markdown(f"**Database:** `{ledger.url}`")
    c2.markdown(f"**Signing key:** `{key_id(key.public_key())}` (Ed25519)")
    c2.download_button(
        "Download the public key (to verify releases elsewhere)",
        public_pem(key.public_key()),
        "clinical-synthesis-studio.pub.pem",
        "application/x-pem-file",
        key="ledger_pubkey",
    )

    entries = pd.DataFrame(ledger.entries())
    st.subheader("Releases")
    if entries.empty:
        st.info("No release yet. Releases are made on the Review page, below the release gate.")
    else:
        st.dataframe(
            ui_release.ledger_view(entries),
            hide_index=True,
            column_config=ui_release.LEDGER_COLUMNS,
            key="ledger_table",
        )
        st.caption(
            "Hashes shortened to 12 characters here; the CSV and each manifest hold them whole."
        )
        st.download_button(
            "Download the ledger (CSV)",
            export.to_csv_bytes(entries),
            "release_ledger.csv",
            "text/csv",
            key="ledger_csv",
        )
        pick = st.selectbox(
            "Release",
            entries["id"].tolist(),
            format_func=lambda i: f"{i}: {entries.set_index('id').loc[i, 'set_name']}",
            key="ledger_pick",
        )
        try:
            signed = ledger.manifest(int(pick))
        except CoreError as exc:  # a damaged row: the others stay viewable
            widgets.show_error(exc, f"Showing release {pick}")
            signed = None
        if signed is not None:
            with st.expander(f"Signed manifest of release {pick}"):
                st.json(signed, expanded=False)
            st.download_button(
                "Download this manifest",
                manifest_json(signed),
                f"release_{pick}.release.json",
                "application/json",
                key="ledger_manifest",
            )

    st.subheader("Verify the ledger")
    st.caption(
        "Walks the whole hash chain: every row's hash and its link to the row before, every "
        "manifest's signature by the key it recorded, key rotations, the key table and the signed "
        "head (row count and last hash), so a row deleted, reordered or edited in the database is "
        "found. Same as `python -m core.report verify-ledger`."
    )
    if st.button("Verify the ledger", key="verify_ledger"):
        try:
            report = ledger.verify([key.public_key()])
        except CoreError as exc:
            widgets.show_error(exc, "Verifying the ledger")
            report = None
        if report is not None and report.ok:
            st.success(
                f"Intact: {report.rows} rows; every row hash and link, every signature and the "
                f"signed head hold (last row hash `{report.last_hash[:16]}...`).",
                icon=":material/verified:",
            )
        elif report is not None:
            st.error(
                f"{len(report.findings)} finding(s) in {report.rows} rows: the ledger was changed "
                "outside the app. Keep this list, restore the database from a backup and find out "
                "who had write access.",
                icon=":material/gpp_bad:",
            )
            st.dataframe(
                pd.DataFrame([f.__dict__ for f in report.findings]),
                hide_index=True,
                key="ledger_findings",
            )

    st.subheader("Verify a release")
    st.caption(
        "Checks a manifest's hash and Ed25519 signature, that it was signed by this server's key and, "
        "given the released file, that the file is the one released. Same as "
        "`python -m core.report verify MANIFEST [SET]`."
    )
    v1, v2 = st.columns(2)
    manifest_file = v1.file_uploader(
        "Release manifest (JSON)", type=["json"], key="verify_manifest"
    )
    released_file = v2.file_uploader("Released file (optional)", key="verify_set")
    if manifest_file is not None:
        try:
            manifest = json.loads(manifest_file.getvalue())
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            st.error(f"{manifest_file.name} is not a release manifest: {exc}")
            st.stop()
        known = [key.public_key()]  # this server's key and every key its ledger signed with
        for pem in ledger.public_keys().values():
            try:
                known.append(load_pem_public_key(pem.encode()))
            except ValueError:
                continue
        result = verify_manifest(
            manifest, released_file.getvalue() if released_file is not None else None, known
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {"check": w, "result": "ok" if ok else "FAILED", "detail": d}
                    for w, ok, d in result.checks
                ]
            ),
            hide_index=True,
            key="verify_checks",
        )
        if result.ok:
            st.success("Verified: signed by this server and unchanged.", icon=":material/verified:")
        else:
            st.error(
                "Rejected: this manifest (or file) is not what was released.",
                icon=":material/gpp_bad:",
            )
