"""Review page through AppTest: demo cohort, an EHRDiff set and the baseline side by side, report."""

import hashlib
import json

import pytest

from core.report.review_sections import SECTIONS
from tests.app.pages import load_demo, open_page
from ui import state
from ui.review.sections import PAGE

TIMEOUT = 300


@pytest.mark.slow
def test_demo_cohort_two_sets_side_by_side_and_report():
    at = open_page(timeout=TIMEOUT)
    load_demo(at, "ICU stays")
    at.switch_page("pages/2_Generate.py").run()
    box = at.selectbox(key="gen_model")
    box.set_value(next(o for o in box.options if "PhysioNet" in o)).run()
    at.number_input(key="gen_n").set_value(800)
    at.number_input(key="gen_steps").set_value(8)
    at.text_input(key="gen_name").set_value("EHRDiff")
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception and not at.error

    at.switch_page("pages/3_Review.py").run()
    next(b for b in at.button if b.label == "Add independent-marginals baseline").click().run()
    assert set(at.multiselect(key="review_sets").value) == {
        "EHRDiff",
        "Independent marginals (baseline)",
    }
    at.selectbox(key="review_mmd").set_value("subsample 2,000 records")
    at.number_input(key="review_boot").set_value(20)
    next(b for b in at.button if b.label == "Run review").click().run()
    assert not at.exception and not at.error
    summary = at.dataframe[0].value
    assert {"EHRDiff", "Independent marginals (baseline)", "ideal"} <= set(summary.columns)
    rows = summary.set_index("metric")
    corr = rows.loc["Correlation matrix difference (mean |r_real - r_syn|)"]
    assert (
        corr["EHRDiff"] < corr["Independent marginals (baseline)"]
    )  # the model keeps correlations
    mia = rows.loc["Membership inference accuracy (distance attack)"]
    assert 0.5 <= mia["EHRDiff"] < 0.6
    # Per-column fidelity: a sortable table per set, worst column first; the summary row stays.
    # how the estimates were made: MMD's estimator and interval, TSTR's records ("n of N")
    how = [c.value for c in at.caption if c.value.startswith("EHRDiff: MMD ")]
    assert len(how) == 1 and "exact, over all pairs of 1,600 real and 800 synthetic" in how[0]
    assert "TSTR models fitted on 800 of 800 synthetic records" in how[0]
    assert "on 1,600 of 1,600 real training records" in how[0]
    worst = rows.loc["Per-column fidelity (worst column's KS or TV)"]
    assert 0 < worst["EHRDiff"] <= 1
    assert "Per-column fidelity" in [h.value for h in at.subheader]
    per_set = [d.value for d in at.dataframe if "Off-support share" in d.value.columns]
    assert len(per_set) == 2  # one table per set, EHRDiff's first (the sets' order)
    columns = per_set[0]
    assert columns["Distance"].dropna().is_monotonic_decreasing
    assert columns["Distance"].iloc[0] == worst["EHRDiff"]
    gcs = columns.set_index("Column").loc["GCS_max"]
    assert gcs["Measure"] == "KS" and gcs["Real support"].endswith("values")
    assert gcs["Off-support share"] == 0.0  # the shipped model decodes onto GCS's own values
    # issue #33: detection against the real-vs-real reference, what gives each set away
    gbm = rows.loc["Detection AUROC (gradient boosting, synthetic vs real)"]
    assert gbm["Independent marginals (baseline)"] > 0.8  # the baseline has no joint structure
    assert "What gives the set away" in [h.value for h in at.subheader]
    assert "Column-pair trends (mean pair similarity)" in rows.index
    # issue #30: the offline audits in the shipped model's manifest, for the set it made only
    (audits,) = [t.value for t in at.table if "trained with" in t.value.columns]
    audits = audits.reset_index()
    assert set(audits["set"]) == {"EHRDiff"}  # the baseline was made by no model
    assert audits["audit"].str.startswith("canary audit").any()
    titles = [s.title for s in SECTIONS]  # the page keeps core's one order of sections
    shown = [h.value for h in at.subheader if h.value in titles]
    assert shown == sorted(shown, key=titles.index) and len(shown) >= 6
    downloads = {d.label: d for d in at.get("download_button")}
    assert {"Download HTML report", "Download metrics (JSON)", "Download metrics (CSV)"} <= set(
        downloads
    )
    at.button(key="filter_EHRDiff").click().run()
    filtered = at.session_state["css.synthetic_sets"]["EHRDiff (privacy-filtered)"]
    assert 700 <= filtered.table.n_records < 800  # a model's set loses only its closest records
    assert "privacy filter" in filtered.provenance and filtered.provenance["sampler"]


def test_the_page_renders_each_section_core_lists_for_it():
    assert set(PAGE) == {s.id for s in SECTIONS if s.on_page}


def test_uploaded_set_with_wrong_columns_is_refused_by_name():
    at = open_page(timeout=TIMEOUT)
    load_demo(at, "")  # the first demo
    at.switch_page("pages/3_Review.py").run()
    at.file_uploader(key="review_upload").set_value(
        ("other.csv", b"Age,Colour\n50,red\n60,blue\n", "text/csv")
    ).run()
    assert not at.exception
    assert (
        "columns differ from the real cohort" in at.error[0].value
        and "unexpected Colour" in at.error[0].value
    )


@pytest.mark.slow
def test_release_gate_blocks_a_training_copy_until_a_reasoned_override():
    from core.report.export import to_csv_bytes

    at = open_page("pages/1_Cohort.py")
    load_demo(at, "Demo: 2,000 synthetic ICU stays")
    at.switch_page("pages/3_Review.py").run()
    table, split = at.session_state["css.cohort_table"][1], at.session_state["css.split"]
    leak = to_csv_bytes(table.subset(split.train).to_frame())
    at.file_uploader(key="review_upload").set_value(("leak.csv", leak, "text/csv")).run()
    provenance = at.session_state["css.synthetic_sets"]["Upload: leak.csv"].provenance
    # an uploaded set was sampled by no model: its audit record must not name a sampler
    assert provenance["source"] == "uploaded file leak.csv"
    assert not {"sampler", "steps", "schedule", "seed"} & set(provenance)
    assert len(provenance["file sha256"]) == 64
    at.multiselect(key="review_sets").set_value(["Upload: leak.csv"]).run()
    at.selectbox(key="review_mmd").set_value("subsample 2,000 records")
    at.number_input(key="review_boot").set_value(20)
    at.button(key="review_run").click().run()
    assert not at.exception
    gate = next(d.value for d in at.dataframe if "check" in d.value.columns)
    copies = gate.set_index("check").loc["Exact copies of training records"]
    assert copies["result"] == "fail" and copies["estimate"] > 0.9
    labels = {d.label for d in at.get("download_button")}
    assert "Download synthetic set" not in labels  # blocked
    rank_by = at.radio(key="exposure_attack_Upload: leak.csv")  # the strongest attack preset
    assert "strongest in this review" in rank_by.options[rank_by.index]
    next(b for b in at.button if b.label == "Compute the per-patient ranking").click().run()
    ranking = next(d.value for d in at.dataframe if "holdout_p" in d.value.columns)
    assert (ranking["nearest_distance"] == 0).all()  # every training patient was copied
    assert any("have p < 0.01" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Add a privacy-filtered copy of this set").click().run()
    assert any("Nothing is left to release" in w.value for w in at.warning)  # all copies
    assert any("does not pass the release gate (fail" in w.value for w in at.warning)
    at.checkbox(key="gate_override").check().run()
    assert not any(b.key == "gate_release" for b in at.button)  # not without a reason
    at.text_input(key="gate_reason").set_value("tabletop exercise, steward J. Doe").run()
    assert "Download synthetic set" not in {d.label for d in at.get("download_button")}
    at.button(key="gate_release").click().run()
    assert not at.exception and not at.error
    labels = {d.label for d in at.get("download_button")}
    assert {"Download synthetic set", "Download signed release manifest (JSON)"} <= labels
    _, data, signed, entry = at.session_state["css.released"]
    assert signed["override_reason"] == "tabletop exercise, steward J. Doe"
    assert signed["synthetic_sha256"] == hashlib.sha256(data).hexdigest()
    # released once: the button is disabled, another run of the page releases nothing more
    assert at.button(key="gate_release").disabled
    at.run()
    assert at.button(key="gate_release").disabled and at.session_state["css.released"][3] == entry

    # the Ledger page lists the release, with who made it, and verifies its manifest
    at.switch_page("pages/6_Ledger.py").run()
    assert not at.exception and not at.error
    rows = next(d.value for d in at.dataframe if "subject" in d.value.columns)
    row = rows.set_index("id").loc[entry]
    assert row["subject"] == "local user" and row["set_name"] == "Upload: leak.csv"
    assert row["verdict"] == "fail (released by override)"
    assert row["override_reason"] == "tabletop exercise, steward J. Doe"
    manifest = json.dumps(signed).encode()
    at.file_uploader(key="verify_manifest").set_value(("m.json", manifest, "application/json"))
    at.file_uploader(key="verify_set").set_value(("leak.csv", data, "text/csv")).run()
    assert any("Verified" in s.value for s in at.success)
    tampered = json.dumps({**signed, "override_reason": None}).encode()
    at.file_uploader(key="verify_manifest").set_value(("m.json", tampered, "application/json"))
    at.run()
    assert any("Rejected" in e.value for e in at.error)
    checks = next(d.value for d in at.dataframe if "check" in d.value.columns).set_index("check")
    assert checks.loc["manifest hash", "result"] == "FAILED"
    assert checks.loc["released file", "result"] == "ok"


@pytest.mark.slow
def test_a_second_session_reviewing_the_same_set_gets_the_shared_result():
    """The review cache is shared by sessions; the second one must not replay the first one's
    progress bar (st.cache_resource did, and crashed it)."""
    runs = []
    for _ in range(2):
        at = open_page("pages/1_Cohort.py")
        load_demo(at, "Demo: 2,000 synthetic ICU stays")
        at.switch_page("pages/3_Review.py").run()
        at.button(key="review_baseline").click().run()
        at.selectbox(key="review_mmd").set_value("subsample 2,000 records")
        at.number_input(key="review_boot").set_value(20)
        at.button(key="review_run").click().run()
        assert not at.exception and not at.error
        runs.append(at.session_state[state.REVIEW_RESULTS][0][1][0])  # (names, reviews, ...)
    assert runs[1] is runs[0]  # computed once


THREE_ROWS = b"id,Age,HR\np1,54,80\np2,76,90\np3,44,70\n"


def load_three_rows(at) -> None:
    """The issue's change of cohort: a 3-row CSV loaded on the Cohort page (train 2 / holdout 1)."""
    at.switch_page("pages/1_Cohort.py").run()
    at.radio(key="cohort_source_mode").set_value("Upload").run()
    at.selectbox(key="cohort_format").set_value("wide_table").run()
    at.file_uploader(key="upload_wide_table_table").set_value(
        ("three.csv", THREE_ROWS, "text/csv")
    ).run()
    next(b for b in at.button if b.label == "Load cohort").click().run()
    assert not at.exception and not at.error
    split = at.session_state["css.split"]
    assert (len(split.train), len(split.holdout)) == (2, 1)


@pytest.mark.slow
def test_a_changed_cohort_marks_the_review_out_of_date_and_blocks_its_release():
    """Issue 28: the Review kept the previous cohort's results and released a set from them,
    pairing the new cohort's fingerprint with the old cohort's gate checks."""
    at = open_page("pages/1_Cohort.py")
    load_demo(at, "Demo: 2,000 synthetic ICU stays")
    old = at.session_state["css.cohort"].fingerprint()
    at.switch_page("pages/3_Review.py").run()
    at.button(key="review_baseline").click().run()
    at.selectbox(key="review_mmd").set_value("subsample 2,000 records")
    at.number_input(key="review_boot").set_value(20)
    at.button(key="review_run").click().run()
    assert not at.exception and not at.error
    assert not any("out of date" in w.value for w in at.warning)
    at.checkbox(key="gate_override").check().run()  # the baseline fails the floors here
    at.text_input(key="gate_reason").set_value("tabletop exercise").run()
    assert not at.button(key="gate_release").disabled

    load_three_rows(at)
    new = at.session_state["css.cohort"].fingerprint()
    at.switch_page("pages/3_Review.py").run()
    assert not at.exception
    stale = [w.value for w in at.warning if "out of date" in w.value]
    assert stale, [w.value for w in at.warning]
    assert f"the cohort changed since this review (was `{old[:12]}`" in stale[0]
    assert f"now `{new[:12]}`" in stale[0]
    assert "split changed" in stale[0]  # 1,600 / 400 then, 2 / 1 now
    assert "settings changed" not in stale[0]  # the widgets start from the reviewed settings
    assert at.button(key="gate_release").disabled  # AppTest, like a browser, cannot click it
    assert all(d.disabled for d in at.get("download_button"))  # no report of the old review
    from core.release.ledger import Ledger
    from core.release.settings import ledger_url

    assert Ledger(ledger_url()).entries() == []
    # rerunning the review on the current cohort lifts the block
    at.button(key="review_baseline").click().run()
    at.multiselect(key="review_sets").set_value(["Independent marginals (baseline) (2)"])
    at.button(key="review_run").click().run()
    assert not at.exception and not at.error
    assert not any("out of date" in w.value for w in at.warning)
    at.checkbox(key="gate_override").check().run()  # 2 training records: the gate fails
    at.text_input(key="gate_reason").set_value("tabletop exercise").run()
    assert not at.button(key="gate_release").disabled


def test_the_chosen_sets_survive_a_visit_to_another_page():
    at = open_page(timeout=TIMEOUT)
    load_demo(at, "ICU stays")
    at.switch_page("pages/3_Review.py").run()
    for _ in range(2):
        at.button(key="review_baseline").click().run()
    first, second = "Independent marginals (baseline)", "Independent marginals (baseline) (2)"
    assert at.multiselect(key="review_sets").value == [first, second]
    at.multiselect(key="review_sets").set_value([second]).run()
    at.switch_page("pages/2_Generate.py").run()
    assert state.REVIEW_CHOICE not in at.session_state  # Streamlit dropped the widget's state
    at.switch_page("pages/3_Review.py").run()
    assert at.multiselect(key="review_sets").value == [second]
