"""Releasing a reviewed set: the steward's release (signed manifest, audit ledger), the
server's signing key and ledger."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.errors import CoreError
from core.release import settings as release_settings
from core.release.gate import GateVerdict, release_manifest
from core.release.ledger import Ledger
from core.release.publish import publish
from core.release.signing import load_or_create_key, manifest_json
from core.report.export import ExportFile, release_file
from core.report.review_sections import ReviewDocument
from ui import auth, widgets


def release_panel(doc: ReviewDocument, sets: dict, stale: bool) -> None:
    """The set to release, released as its release file with a manifest naming exactly what
    its review reviewed: the cohort, the split, the set's provenance and the settings."""
    name = st.selectbox("Release a synthetic set", doc.names, key="gate_set")
    synth = sets[name]
    context = doc.context
    release_download(
        doc.verdicts[name],
        release_file(name, synth),  # built when Release is pressed
        {
            "cohort_fingerprint": context.cohort_fingerprint,
            "split": context.split,
            "provenance": context.sets[name],
            "review_settings": context.settings,
        },
        id(synth),
        stale=stale,
    )


def release_download(
    verdict: GateVerdict,
    file: ExportFile,
    manifest_args: dict,
    set_id: int,
    stale: bool = False,
) -> None:
    """Releasing one synthetic set as ``file`` (``set_id``: the set object's identity, so a
    regenerated set of the same name is released afresh), by a steward: the manifest is signed
    with the server key and recorded in the audit ledger, then the set and its manifest can be
    downloaded. A set that does not pass needs an explicit, reasoned override, which the manifest
    and the ledger record. ``stale``: the review is out of date; the Release button is shown
    disabled."""
    if not auth.steward_only("Releasing a synthetic set"):
        return
    if stale:  # the checks above are not about the cohort and set on the page now
        st.button(RELEASE_LABEL, type="primary", key="gate_release", disabled=True)
        st.caption(
            "Releasing is disabled: this review is out of date. Run the review again on the "
            "current cohort and sets."
        )
        return
    reason = None
    if not verdict.passed:
        by_verdict = {
            v: [c.name for c in verdict.checks if c.verdict == v] for v in ("fail", "inconclusive")
        }
        st.warning(
            f"**{verdict.set_name}** does not pass the release gate ("
            + "; ".join(f"{v}: {', '.join(names)}" for v, names in by_verdict.items() if names)
            + ")."
            + (
                " Inconclusive: the interval straddles the threshold; a larger holdout can tell."
                if verdict.status == "inconclusive"
                else ""
            ),
            icon=":material/gpp_bad:",
        )
        override = st.checkbox(
            "Override: release this set despite the checks that did not pass", key="gate_override"
        )
        reason = st.text_input(
            "Reason for the override (recorded in the manifest and the ledger)",
            key="gate_reason",
            disabled=not override,
        )
        if not (override and reason.strip()):
            st.caption("Releasing a set that does not pass needs the override and a reason.")
            return
    else:
        st.success(f"**{verdict.set_name}** passes the release gate.", icon=":material/verified:")

    key = (verdict.set_name, set_id, verdict.status, reason)
    released = st.session_state.get(RELEASED)
    done = released is not None and released[0] == key  # a set is released once, not per click
    if st.button(RELEASE_LABEL, type="primary", key="gate_release", disabled=done):
        data = file.build()  # its sha256 must be the one reviewed
        manifest = release_manifest(
            verdict,
            synthetic_sha256=hashlib.sha256(data).hexdigest(),
            override_reason=reason,
            **manifest_args,
        )
        try:
            signed, entry = publish(manifest, auth.current_actor(), ledger=ledger())
        except CoreError as exc:
            widgets.show_error(exc, "Recording the release")
            return
        st.session_state[RELEASED] = (key, data, signed, entry)
        st.rerun()  # shows the button disabled and the release's downloads
    if not done:
        st.caption(
            "Releasing signs the manifest and records who released what, when, in the ledger."
        )
        return
    _, data, signed, entry = released
    st.success(
        f"Release {entry} recorded in the ledger; manifest signed with key "
        f"`{signed['signature']['key_id']}`. Releasing it again is disabled: regenerate the set "
        "(or change the override) for a new release.",
        icon=":material/receipt_long:",
    )
    c1, c2 = st.columns(2)
    c1.download_button("Download synthetic set", data, file.filename, file.mime, key="gate_dl_data")
    c2.download_button(
        "Download signed release manifest (JSON)",
        manifest_json(signed),
        f"{file.filename.rsplit('.', 1)[0]}.release.json",
        "application/json",
        key="gate_dl_manifest",
    )


RELEASED = "css.released"
RELEASE_LABEL = "Release: sign and record in the ledger"


@st.cache_resource(show_spinner=False)
def _ledger(url: str) -> Ledger:
    return Ledger(url)


@st.cache_resource(show_spinner=False)
def _signing_key(path: str, version: int) -> Ed25519PrivateKey:
    return load_or_create_key(Path(path))


def signing_key() -> Ed25519PrivateKey:
    """The server's release signing key, read (or made) once per server and read again when
    the file changes (a key rotation renames a new key into place)."""
    path = release_settings.signing_key_path()
    try:
        version = path.stat().st_mtime_ns
    except OSError:
        version = 0  # not made yet
    return _signing_key(str(path), version)


def ledger() -> Ledger:
    """The configured audit ledger, opened once per server."""
    return _ledger(release_settings.ledger_url())


# The Ledger page's table: who, when, what and the verdict first (they used to sit off-screen
# behind the hashes); hashes shortened for reading (the CSV keeps them whole).
LEDGER_ORDER = ("id", "released_at", "display_name", "roles", "set_name", "verdict",
                "override_reason", "state", "kind")  # fmt: skip
LEDGER_COLUMNS = {
    "id": st.column_config.NumberColumn("#", width="small"),
    "released_at": st.column_config.TextColumn("released (UTC)", width="small"),
    "display_name": st.column_config.TextColumn("by", width="small"),
    "roles": st.column_config.TextColumn("roles", width="small"),
    "set_name": st.column_config.TextColumn("synthetic set", width="medium"),
    "verdict": st.column_config.TextColumn("verdict", width="medium"),
    "override_reason": st.column_config.TextColumn("override reason", width="medium"),
}


def ledger_view(entries: pd.DataFrame) -> pd.DataFrame:
    """``entries`` in reading order, every 64-character hash cut to its first 12 characters."""
    first = [c for c in LEDGER_ORDER if c in entries.columns]
    view = entries[first + [c for c in entries.columns if c not in first]].copy()
    if "released_at" in view:  # 2026-12-03T21:08:47+00:00 -> 2026-12-03 21:08
        view["released_at"] = view["released_at"].str.slice(0, 16).str.replace("T", " ")
    for col in view.columns:
        if col.endswith(("sha256", "hash", "fingerprint")):
            view[col] = view[col].map(lambda v: f"{v[:12]}…" if isinstance(v, str) else v)
    return view
