"""Review: fidelity, utility and privacy of synthetic sets side by side, with an exportable report."""

import hashlib

import pandas as pd
import streamlit as st

from core.data.io import read_table
from core.data.records import table_from_frame
from core.errors import CohortError, CoreError
from core.generation import SyntheticSet
from core.metrics import specs as metric_specs
from core.metrics.baselines import independent_marginals
from core.metrics.ids import MetricId
from core.metrics.suite import ReviewSettings, best_column, summary_table
from core.release.gate import evaluate_gate
from core.report import export
from core.report import review_figures as rf
from core.report.review_report import (
    anonymeter_results,
    battery_frame,
    battery_note,
    build_html,
    code_counts,
    column_frame,
    figures_for,
    make_context,
    to_json,
)
from ui import errors, state, widgets
from ui import fidelity as ui_fidelity
from ui import review as ui_review

with errors.guard("The Review page"):  # nothing raw reaches the browser
    widgets.device_sidebar()
    st.title("Review")
    st.caption(
        "Compare synthetic sets with the real cohort: fidelity and utility against the training split, privacy "
        "against training (members) vs holdout (non-members) patients."
    )
    ref = ui_review.reference()
    if ref is None:
        st.info(
            "Load a cohort on the Cohort page first (the demo cohort works); its split is what the review compares against."
        )
        st.stop()
    cohort, split, table = ref.cohort, ref.split, ref.table
    train, holdout, encoding = ref.train, ref.holdout, ref.encoding
    sets = state.synthetic_sets()

    with st.container(border=True):
        st.markdown(
            f"**Real cohort:** {cohort.name}: {len(split.train):,} training and {len(split.holdout):,} holdout {ref.unit} (seed {split.seed})."
        )
        c1, c2 = st.columns(2)
        upload = c1.file_uploader(
            "Add a synthetic set from a file (CSV or Parquet with the cohort's columns)",
            type=["csv", "parquet", "gz"],
            key="review_upload",
            help=f"Up to {state.upload_limit_mb()} MB. Columns must match the real cohort's; the id and label columns are optional.",
        )
        if upload is not None and state.upload_is_new(upload.file_id):
            try:
                frame = read_table(upload.getvalue(), upload.name)
                synth_table = table_from_frame(frame, table, upload.name)
                name = state.unique_name(f"Upload: {upload.name}", sets)
                sets[name] = SyntheticSet(
                    synth_table,
                    encoding.encode(synth_table),
                    f"uploaded file {upload.name}",
                    None,
                    0.0,
                    0,
                    origin={"file sha256": hashlib.sha256(upload.getvalue()).hexdigest()},
                )
                state.mark_upload_added(upload.file_id)
                state.choose_for_review(name)
                st.toast(f"Added {name}")
            except CoreError as exc:
                widgets.show_error(exc, "Reading the synthetic set")
        with c2:
            st.write("Baseline")
            if st.button(
                "Add independent-marginals baseline",
                key="review_baseline",
                help="Every column resampled independently from the training data: right marginals, no correlations.",
            ):
                base, vectors = independent_marginals(
                    train, len(split.train), seed=0, encoding=encoding
                )
                name = state.unique_name("Independent marginals (baseline)", sets)
                state.choose_for_review(name)
                sets[name] = SyntheticSet(
                    base,
                    vectors,
                    "baseline: independent marginals",
                    None,
                    0.0,
                    0,
                    origin={
                        "definition": "every column resampled independently from the training split",
                        "seed": 0,
                    },
                )

        compatible, reasons = [], {}
        for name, s in sets.items():
            try:
                encoding.check_compatible(s.table)
                compatible.append(name)
            except CohortError as exc:
                reasons[name] = str(exc)
        for name, why in reasons.items():
            st.caption(f":material/block: **{name}** cannot be compared with this cohort: {why}")
        state.prune_review_choice(compatible)
        chosen = st.multiselect("Synthetic sets to review", compatible, key=state.REVIEW_CHOICE)
        c1, c2, c3 = st.columns(3)
        last = state.reviewed_settings() or ReviewSettings()
        seed = int(c1.number_input("Seed", 0, 2**31 - 1, last.seed, key="review_seed"))
        mmd_sub = c2.selectbox(
            "MMD",
            ("exact (all records)", "subsample 2,000 records"),
            index=0 if last.mmd_max_records is None else 1,
            key="review_mmd",
        )
        boot = int(
            c3.number_input(
                "Bootstrap resamples (CIs)", 20, 2000, last.bootstrap, 20, key="review_boot"
            )
        )
        run = st.button("Run review", type="primary", disabled=not chosen, key="review_run")

    settings = ReviewSettings(
        seed=seed, mmd_max_records=None if mmd_sub.startswith("exact") else 2000, bootstrap=boot
    )
    if run:
        bar = st.progress(0.0, text="Computing metrics")
        reviews = []
        try:
            for k, name in enumerate(chosen):
                bar.progress(k / len(chosen), text=f"Reviewing {name} ({k + 1} of {len(chosen)})")
                synth = sets[name]
                key = ui_review.review_key(ref, synth, settings)

                def report(i: int, total: int, label: str, k: int = k, name: str = name) -> None:
                    done = (k + i / max(total, 1)) / len(chosen)
                    bar.progress(done, text=f"{name}: {label} ({k + 1} of {len(chosen)} sets)")

                reviews.append(
                    ui_review.run_review(
                        name,
                        train,
                        holdout,
                        synth.table,
                        encoding,
                        settings,
                        key,
                        report,
                        ref.sequences_for(synth),
                    )
                )
            state.set_review_results(
                chosen, reviews, settings, ui_review.review_inputs(ref, chosen, sets, settings)
            )
        except CoreError as exc:
            widgets.show_error(exc, "The review")
        finally:
            bar.empty()

    # bound to the cohort, split, sets and settings on the page now
    stored = state.review_results(lambda kept: ui_review.review_inputs(ref, kept, sets, settings))
    if not stored:
        st.info(
            "Choose one or more synthetic sets and press **Run review**. Generate sets on the Generate page, upload one, or add the baseline."
        )
        st.stop()
    names, reviews, used = stored.value
    stale = stored.stale
    if stale:
        st.warning(
            "**This review is out of date:** "
            + "; ".join(stored.changes)
            + ". Run the review again: releasing and the report are disabled until then.",
            icon=":material/update:",
        )
    elif sorted(chosen) != sorted(names):
        st.caption(
            "The sets chosen above differ from the ones reviewed below; press **Run review** to "
            "review the choice."
        )
    names = [n for n in names if n in sets]
    reviews = [r for r in reviews if r.name in names]
    if not reviews:
        st.stop()

    st.subheader("Summary")
    summary = summary_table(reviews)

    def highlight(row: pd.Series) -> list[str]:
        best = best_column(row, names)
        return [
            "background-color: #dff2e6; font-weight: 600" if c == best and len(names) > 1 else ""
            for c in row.index
        ]

    st.dataframe(
        summary.style.apply(highlight, axis=1).format({n: "{:.4g}" for n in [*names, "ideal"]}),
        hide_index=True,
        column_config={"id": None, "spec": None},
        key="review_summary",
    )
    st.caption("Highlighted: the value closest to the ideal in each row.")
    with st.expander("What the metrics mean"):
        for spec_id in dict.fromkeys(summary["spec"]):
            st.markdown(f"**{metric_specs.title(spec_id)}.** {metric_specs.explanation(spec_id)}")
    for rv in reviews:
        if rv.skipped:
            st.caption(
                f"{rv.name}: not computed: "
                + "; ".join(f"{metric_specs.title(k)} ({v})" for k, v in rv.skipped.items())
            )
        if rv.subsampled_from:
            st.caption(
                f"{rv.name}: reviewed on a random subsample of {rv.n_records:,} of {rv.subsampled_from:,} records."
            )

    mmd = {rv.name: rv.get(MetricId.MMD) for rv in reviews if rv.get(MetricId.MMD) is not None}
    if mmd:
        st.plotly_chart(rf.mmd_bars(mmd), key="review_mmd_bars")
    risks = anonymeter_results(reviews)
    if risks:
        st.plotly_chart(rf.anonymeter_risks(risks), key="review_anonymeter")
        st.caption(
            "Anonymeter (Giomi et al., PoPETs 2023): how much more often each attack succeeds on "
            "training patients than on holdout patients the generator never saw, out of what was "
            "left to gain. Hover for the success rates behind each risk."
        )
    attacks = battery_frame(reviews)
    if not attacks.empty:
        st.subheader("Membership attacks")
        st.dataframe(attacks, hide_index=True, key="review_attacks")
        st.caption(battery_note(reviews))
    codes = code_counts(train, {rv.name: sets[rv.name].table for rv in reviews})
    if stale:  # the figures would draw today's cohort and sets beside the old results
        st.caption("The figures return when the review is run again.")
    else:
        for col, rv in zip(st.columns(len(reviews)), reviews, strict=True):
            real_c, syn_c = codes[rv.name]
            with col:
                st.markdown(f"#### {rv.name}")
                for i, fig in enumerate(figures_for(rv, real_c, syn_c)):
                    st.plotly_chart(fig, key=f"review_fig_{rv.name}_{i}")

    per_column = {rv.name: rv.get(MetricId.COLUMN_FIDELITY) for rv in reviews}
    per_column = {name: res for name, res in per_column.items() if res is not None}
    if per_column:
        st.subheader("Per-column fidelity")
        st.caption(
            "Every column's real and synthetic values compared on their own, worst first; click a "
            "header to sort. KS above 0.10 (or total variation for categories) is visible to a "
            "reader; an off-support share above 0 means values no real record has (a GCS of 11.37)."
        )
        for tab, (name, res) in zip(st.tabs(list(per_column)), per_column.items(), strict=True):
            with tab:
                st.dataframe(
                    column_frame(res).style.format(precision=3, na_rep=""),
                    hide_index=True,
                    key=f"review_columns_{name}",
                )

    ui_review.validity_panel(reviews)
    ui_fidelity.detection_panel(reviews)

    st.subheader("Release gate")
    st.caption(
        "A set is releasable only when it is private enough (privacy checks) and useful enough "
        "(fidelity floors), by thresholds a data steward sets. A steward releases a set: its "
        "manifest is signed and recorded in the ledger; a set that does not pass needs an explicit "
        "override with a reason."
    )
    thresholds = ui_review.gate_thresholds()
    verdicts = {rv.name: evaluate_gate(rv, thresholds) for rv in reviews}
    st.markdown(ui_review.gate_summary(verdicts))
    st.dataframe(
        ui_review.gate_frame(verdicts).style.format({"estimate": "{:.4g}"}, na_rep=""),
        hide_index=True,
        key="gate_table",
    )
    st.caption(
        "Estimate: for a privacy check, what the set gives away beyond data that never saw the "
        "training patients. A leak passes when its upper bound (one-sided 95%) is at or below the "
        "threshold and fails when its lower bound (one-sided 98.75%) is above it; a floor passes "
        "when its lower bound reaches it and fails when its upper bound misses it; in between, "
        "inconclusive (the holdout is too small to tell). A set with a leak at its threshold passes "
        "in at most 5% of splits; validity and R² are counted over the released records themselves."
    )

    for rv in [] if stale else reviews:  # they compute on today's cohort and sets
        ui_review.exposure_panel(ref, rv.name, sets[rv.name])

    context = make_context(
        cohort,
        split,
        used,
        {n: sets[n].provenance for n in names},
    )
    release_name = st.selectbox("Release a synthetic set", names, key="gate_set")
    release_set = sets[release_name]
    released = ui_review.release_file(release_name, release_set)
    ui_review.release_download(
        verdicts[release_name],
        released.build,  # built when Release is pressed; its sha256 must be the one reviewed
        released.filename,
        released.mime,
        {
            "cohort_fingerprint": context.cohort_fingerprint,
            "split": context.split,
            "provenance": context.sets[release_name],
            "review_settings": context.settings,
        },
        id(release_set),
        stale=stale,
    )

    st.subheader("Export")
    if stale:
        st.caption("The report and metrics are downloadable again once the review is rerun.")
    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "Download HTML report",
        lambda: build_html(reviews, context, codes, verdicts).encode("utf-8"),
        "synthetic_review.html",
        "text/html",
        on_click="ignore",  # deferred file: a rerun would race its fetch
        key="review_dl_html",
        disabled=stale,
    )
    d2.download_button(
        "Download metrics (JSON)",
        lambda: to_json(reviews, context, verdicts).encode("utf-8"),
        "synthetic_review.json",
        "application/json",
        on_click="ignore",
        key="review_dl_json",
        disabled=stale,
    )
    d3.download_button(
        "Download metrics (CSV)",
        export.to_csv_bytes(summary),
        "synthetic_review.csv",
        "text/csv",
        key="review_dl_csv",
        disabled=stale,
    )
