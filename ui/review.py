"""Review-page helpers: cached suite runs, gate thresholds and the release download."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.data.cohort import Cohort, CohortSplit
from core.data.records import EHRTable
from core.data.visits import VisitCohort, patient_table
from core.ehrpd.encoding import VisitEncoding
from core.encoding.vectors import VectorEncoding
from core.errors import CoreError
from core.generation import SyntheticSet
from core.metrics.ids import MetricId
from core.metrics.privacy import patient_exposure, privacy_filter
from core.metrics.specs import SequenceInputs
from core.metrics.suite import Review, ReviewKey, ReviewSettings, review
from core.release import settings as release_settings
from core.release.gate import (
    CHECKS,
    FLOORS,
    GROUPS,
    OPTIONAL,
    GateThresholds,
    GateVerdict,
    detectable_text,
    release_manifest,
)
from core.release.ledger import Ledger
from core.release.publish import publish
from core.release.signing import load_or_create_key, manifest_json
from core.report import export
from core.report.review_report import validity_text
from ui import auth, state, widgets


@dataclass(frozen=True, eq=False)
class RealReference:
    """What the Review compares against: the session's record cohort, or its visit cohort
    (patients' code bags, with the sequences for the sequence metrics)."""

    cohort: Cohort | VisitCohort
    split: CohortSplit
    table: EHRTable  # every record (or patient), for uploads
    train: EHRTable
    holdout: EHRTable
    encoding: VectorEncoding
    visits: tuple[VisitCohort, VisitCohort, dict] | None = None  # train, holdout, vocabularies
    unit: str = "records"

    @cached_property
    def fingerprint(self) -> str:
        """The cohort's fingerprint, computed once per reference (visit cohorts hash their
        events on every call)."""
        return self.cohort.fingerprint()

    def sequences_for(self, synth: SyntheticSet) -> SequenceInputs | None:
        if self.visits is None or synth.visits is None:
            return None
        return SequenceInputs(self.visits[0], self.visits[1], synth.visits, self.visits[2])


def reference() -> RealReference | None:
    """The cohort the Cohort page shows (the one loaded last), with its split."""
    visits, v_split = state.get_visits(), state.get_visit_split()
    if visits is not None and v_split is not None and state.last_loaded() == "visits":
        cached = st.session_state.get("css.review_visit_reference")
        if cached is not None and cached.cohort is visits and cached.split is v_split:
            return cached
        train_v, holdout_v = visits.subset(v_split.train), visits.subset(v_split.holdout)
        vocab = VisitEncoding.fit(train_v).vocabulary_map  # EHRPD's default vocabulary rule
        table = patient_table(visits, vocab)
        train = table.subset(v_split.train)
        ref = RealReference(
            visits,
            v_split,
            table,
            train,
            table.subset(v_split.holdout),
            VectorEncoding.fit(train),
            (train_v, holdout_v, vocab),
            "patients",
        )
        st.session_state["css.review_visit_reference"] = ref
        return ref
    cohort, split, table = state.get_cohort(), state.get_split(), state.cohort_table()
    if cohort is None or split is None or table is None:
        return None
    return RealReference(
        cohort,
        split,
        table,
        table.subset(split.train),
        table.subset(split.holdout),
        state.train_encoding(),
    )


# Reviews shared by every session of the server, keyed by fingerprints. Not st.cache_resource:
# it replays the progress bar the review drives into the next session, which has no such bar.
_REVIEWS: OrderedDict[tuple, Review] = OrderedDict()
_REVIEWS_LOCK = threading.Lock()
MAX_CACHED_REVIEWS = 64


def run_review(
    name: str,
    train: EHRTable,
    holdout: EHRTable,
    synth: EHRTable,
    encoding: VectorEncoding,
    settings: ReviewSettings,
    key: ReviewKey,
    callback=None,
    sequences: SequenceInputs | None = None,
) -> Review:
    """Cached per (name, what is reviewed): ``key`` (cohort, split, file, settings), which the
    review carries into its release manifest."""
    reviewed = key
    key = (name, reviewed)
    with _REVIEWS_LOCK:
        if key in _REVIEWS:
            _REVIEWS.move_to_end(key)
            return _REVIEWS[key]
    result = review(
        name,
        train,
        holdout,
        synth,
        encoding=encoding,
        settings=settings,
        callback=callback,
        sequences=sequences,
        key=reviewed,
    )
    with _REVIEWS_LOCK:
        _REVIEWS[key] = result
        while len(_REVIEWS) > MAX_CACHED_REVIEWS:
            _REVIEWS.popitem(last=False)
    return result


@dataclass(frozen=True)
class ReleaseFile:
    """The file a set is released as; ``build`` makes its bytes (deterministically)."""

    filename: str
    mime: str
    build: Callable[[], bytes]


def release_file(name: str, synth: SyntheticSet) -> ReleaseFile:
    """Visit sequences as a MEDS shard, complete patients as Parquet, records as CSV."""
    stem = export.file_stem(name)
    if synth.visits is not None:
        return ReleaseFile(
            f"{stem}.meds.parquet",
            "application/octet-stream",
            lambda: export.meds_parquet_bytes(synth.visits),
        )
    if synth.cohort is not None:
        return ReleaseFile(
            f"{stem}.parquet",
            "application/octet-stream",
            lambda: export.patients_parquet_bytes(synth.cohort),
        )
    return ReleaseFile(
        f"{stem}.csv", "text/csv", lambda: export.to_csv_bytes(synth.table.to_frame())
    )


SET_SHA256 = "css.set_sha256"


def set_sha256(synth: SyntheticSet) -> str:
    """sha256 of the file ``synth`` is released as: what its review is bound to. Built once
    per set object (a regenerated set of the same name is another object, another file)."""
    cache = st.session_state.setdefault(SET_SHA256, {})
    held = cache.get(id(synth))
    if held is None or held[0] is not synth:
        live = {id(s) for s in state.synthetic_sets().values()}
        for stale in [k for k in cache if k not in live]:  # removed sets
            del cache[stale]
        held = cache[id(synth)] = (
            synth,
            hashlib.sha256(release_file("", synth).build()).hexdigest(),
        )
    return held[1]


def review_key(ref: RealReference, synth: SyntheticSet, settings: ReviewSettings) -> ReviewKey:
    """What reviewing ``synth`` against ``ref`` with ``settings`` reviews."""
    return ReviewKey.of(ref.fingerprint, ref.split, set_sha256(synth), settings)


def _settings_shown(s: ReviewSettings) -> str:
    mmd = "exact" if s.mmd_max_records is None else f"on {s.mmd_max_records:,} records"
    return f"seed {s.seed}, MMD {mmd}, {s.bootstrap:,} bootstrap resamples"


def review_inputs(
    ref: RealReference, names: list[str], sets: dict, settings: ReviewSettings
) -> dict[str, state.Input]:
    """What a review of ``names`` is bound to: the cohort, its split, each set's released file
    and the settings (a set no longer in ``sets`` shows as removed)."""
    split = ref.split.summary()
    inputs = {
        "cohort": state.Input(
            "the cohort",
            f"`{ref.fingerprint[:12]}` ({ref.cohort.name}, {len(ref.table.record_ids):,} {ref.unit})",
            ref.fingerprint,
        ),
        "split": state.Input.of(
            "the split",
            split,
            f"{split['train']:,} train / {split['holdout']:,} holdout {ref.unit}, "
            f"seed {split['seed']}",
        ),
        "settings": state.Input.of("the review settings", settings, _settings_shown(settings)),
    }
    for name in names:
        sha = set_sha256(sets[name]) if name in sets else "removed"
        shown = "removed" if name not in sets else f"file sha256 `{sha[:12]}`"
        inputs[f"set:{name}"] = state.Input(f"the set '{name}'", shown, sha)
    return inputs


GATE_HELP = {
    "mia_advantage": "Allowed best TPR - FPR of the distance attacker among thresholds that flag "
    "at most 10% of the patients the model never saw (every training patient is a target).",
    "exact_copies": "Allowed excess share of synthetic records identical to a training record over "
    "those identical to a holdout record.",
    "dcr_share": "Allowed excess of the share of synthetic records closer to a training patient "
    "than to a holdout one, over 0.5.",
    "attribute_gap": "How much better an attacker may guess training patients' hidden features "
    "than others'.",
    "invalid_records": "Share of released records allowed to break a rule every real training "
    "record obeys (min above max, a value outside the real range); 0 = every record valid.",
    "dimwise_r2": "Lowest dimension-wise probability R² allowed (each feature's prevalence or "
    "mean, synthetic against the training split; 1 = every one matches; empty = not checked).",
    "tstr_deficit": "How far the AUROC of a random forest trained on the synthetic set may fall "
    "below the same forest trained on the real training split, both tested on the holdout "
    "(cohorts with a label; empty = not checked).",
    "singling_out": "Anonymeter's singling-out risk allowed (empty = not checked).",
    "linkability": "Anonymeter's linkability risk allowed (empty = not checked).",
    "inference": "Anonymeter's attribute-inference risk allowed (empty = not checked).",
}


def _threshold_input(col, name: str, default: float | None):
    return col.number_input(
        CHECKS[name].label,
        0.0,
        1.0,
        None if default is None else float(default),
        0.01,
        format="%.3f",
        key=f"gate_{name}",
        help=GATE_HELP[name],
        placeholder="not checked",
    )


def gate_thresholds() -> GateThresholds:
    """Steward-set thresholds (defaults and rationale: core/release/gate.py): the privacy checks,
    the fidelity floors, then the optional Anonymeter checks."""
    defaults = {k: v for k, v in asdict(GateThresholds()).items() if k not in OPTIONAL}
    values = {}
    with st.expander("Thresholds (set by the data steward)"):
        for group in GROUPS:
            names = [n for n in defaults if CHECKS[n].group == group]
            st.caption(
                "Privacy: largest leak allowed."
                if group != FLOORS
                else ("Fidelity floors: a set must also be useful (leave empty to not check).")
            )
            for col, name in zip(st.columns(len(names)), names, strict=True):
                values[name] = _threshold_input(col, name, defaults[name])
        st.caption("Optional checks: Anonymeter's risks (leave empty to not check).")
        for col, name in zip(st.columns(len(OPTIONAL)), OPTIONAL, strict=True):
            values[name] = _threshold_input(col, name, None)
    return GateThresholds(**values)


def gate_frame(verdicts: dict[str, GateVerdict]) -> pd.DataFrame:
    """One row per check: its group, estimate, one-sided bounds and result."""
    return pd.DataFrame(
        [
            {
                "set": name,
                "group": c.group,
                "check": c.name,
                "estimate": c.value,
                "bounds (lower / upper)": "" if c.ci is None else f"{c.ci[0]:.3f} / {c.ci[1]:.3f}",
                "threshold": f"{'≥' if c.at_least else '≤'} {c.threshold:.3g}",
                "result": "not computed" if c.value is None else c.verdict,
            }
            for name, v in verdicts.items()
            for c in v.checks
        ]
    )


def gate_summary(verdicts: dict[str, GateVerdict]) -> str:
    """Per set, the verdict of each group; then the detectable leak (markdown)."""
    lines = [
        f"- **{name}**: {v.status}"
        + " ("
        + ", ".join(f"{g} {v.group_status(g)}" for g in GROUPS if v.group_status(g))
        + ")"
        + (f"; not applicable: {', '.join(v.not_applicable)}" if v.not_applicable else "")
        for name, v in verdicts.items()
    ]
    first = next(iter(verdicts.values()), None)
    return "\n".join(lines) + "\n\n" + detectable_text(first.detectable if first else None)


def validity_panel(reviews: list[Review]) -> None:
    """Each set's validity with the broken rules, most records first (core.metrics.validity)."""
    results = {
        rv.name: rv.get(MetricId.VALIDITY)
        for rv in reviews
        if rv.get(MetricId.VALIDITY) is not None
    }
    if not results:
        return
    st.subheader("Validity")
    for col, (name, res) in zip(st.columns(len(results)), results.items(), strict=True):
        with col:
            st.markdown(f"**{name}**: {validity_text(res)}")
            if len(res.per_feature):
                st.dataframe(
                    res.per_feature.rename(
                        columns={
                            "constraint": "broken rule",
                            "records": "records",
                            "share": "share",
                        }
                    ).drop(columns="kind"),
                    hide_index=True,
                    column_config={"share": st.column_config.NumberColumn(format="percent")},
                    key=f"review_validity_{name}",
                )


def release_download(
    verdict: GateVerdict,
    payload: Callable[[], bytes],
    filename: str,
    mime: str,
    manifest_args: dict,
    set_id: int,
    stale: bool = False,
) -> None:
    """Releasing one synthetic set (``set_id``: the set object's identity, so a regenerated set
    of the same name is released afresh), by a steward: the manifest is signed with the server key and
    recorded in the audit ledger, then the set and its manifest can be downloaded. A set that does
    not pass needs an explicit, reasoned override, which the manifest and the ledger record.
    ``stale``: the review is out of date; the Release button is shown disabled."""
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
        st.warning(
            f"**{verdict.set_name}** does not pass the release gate ({verdict.status}: "
            f"{', '.join(verdict.failures)})."
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
    if st.button(RELEASE_LABEL, type="primary", key="gate_release"):
        data = payload()
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
    released = st.session_state.get(RELEASED)
    if released is None or released[0] != key:
        st.caption(
            "Releasing signs the manifest and records who released what, when, in the ledger."
        )
        return
    _, data, signed, entry = released
    st.success(
        f"Release {entry} recorded in the ledger; manifest signed with key "
        f"`{signed['signature']['key_id']}`.",
        icon=":material/receipt_long:",
    )
    c1, c2 = st.columns(2)
    c1.download_button("Download synthetic set", data, filename, mime, key="gate_dl_data")
    c2.download_button(
        "Download signed release manifest (JSON)",
        manifest_json(signed),
        f"{filename.rsplit('.', 1)[0]}.release.json",
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


def exposure_panel(ref: RealReference, name: str, synth: SyntheticSet) -> None:
    """The training patients a synthetic set sits closest to, ranked by how unusual that
    closeness is for unseen (holdout) patients; one patient's record beside its nearest
    synthetic records. Shown in this session only; never part of the report or the release."""
    key = f"css.exposure.{name}.{id(synth)}"  # a regenerated set of the same name starts afresh
    with st.expander(f"Most exposed training patients ({name}): steward's view, not exported"):
        st.caption(
            "For every training patient: the distance to the nearest synthetic record and the "
            "share of holdout patients at least as close (p; small = closer than chance)."
        )
        if st.button("Compute the per-patient ranking", key=f"exposure_{name}"):
            enc = ref.encoding
            st.session_state[key] = patient_exposure(
                enc.encode(ref.train), enc.encode(ref.holdout), enc.encode(synth.table)
            )
        exposed = st.session_state.get(key)
        if exposed is not None:
            _show_exposure(ref, name, synth, exposed)
        _filter_button(ref, name, synth)


def _filter_button(ref: RealReference, name: str, synth: SyntheticSet) -> None:
    """Adds a copy of the set without the records closer to a training patient than 99% of
    holdout patients come; reviewing both side by side shows what the filter costs."""
    if synth.cohort is not None or synth.visits is not None:
        st.caption("The privacy filter works on record tables; not on series or visit sequences.")
        return
    if not st.button("Add a privacy-filtered copy of this set", key=f"filter_{name}"):
        return
    enc = ref.encoding
    x = enc.encode(synth.table)
    keep, radius = privacy_filter(enc.encode(ref.train), enc.encode(ref.holdout), x)
    if keep.sum() < 2:
        st.warning(
            f"The filter drops {int((~keep).sum()):,} of {len(keep):,} records: every record sits "
            "closer to a training patient than unseen patients come. Nothing is left to release."
        )
        return
    sets = state.synthetic_sets()
    new = state.unique_name(f"{name} (privacy-filtered)", sets)
    sets[new] = replace(
        synth,
        table=synth.table.subset(np.flatnonzero(keep)),
        vectors=x[keep],
        origin=synth.origin
        | {
            "privacy filter": f"dropped {int((~keep).sum()):,} of {len(keep):,} records within "
            f"L1 {radius:.4g} of a training patient (the holdout's 1st percentile)"
        },
    )
    state.choose_for_review(new)
    st.toast(f"Added {new}: {int(keep.sum()):,} records kept. Run the review to compare.")


def _show_exposure(
    ref: RealReference, name: str, synth: SyntheticSet, exposed: pd.DataFrame
) -> None:
    top = exposed.head(20).assign(record=lambda f: ref.train.record_ids[f["train_row"]])
    st.dataframe(
        top[["record", "nearest_distance", "holdout_p"]], hide_index=True, key=f"exp_{name}"
    )
    st.caption(
        f"{int((exposed['holdout_p'] < 0.01).sum()):,} of {len(exposed):,} training patients have "
        "p < 0.01 (about 1% would by chance)."
    )
    pick = st.selectbox(
        "Patient", list(top.index), format_func=lambda i: top["record"][i], key=f"exp_pick_{name}"
    )
    row = top.loc[pick]
    real = (
        ref.train.subset(np.array([row["train_row"]])).to_frame().assign(source="training patient")
    )
    near = synth.table.subset(np.asarray(row["nearest"])).to_frame().assign(source="synthetic")
    st.dataframe(
        pd.concat([real, near], ignore_index=True), hide_index=True, key=f"exp_rows_{name}"
    )
