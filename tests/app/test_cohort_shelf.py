"""The cohort shelf (issue 31): several cohorts per session, switched in the sidebar on every
page, each with its split; returning to the Cohort page keeps what was loaded."""

from __future__ import annotations

import pytest

from tests.app.pages import load_demo, open_page, upload_eicu_visits

STAYS = "Demo: 2,000 synthetic ICU stays"
CODES = "Demo: 1,821 synthetic ICU stays with ICD-9 diagnoses"


@pytest.mark.slow  # ~9 s: two demos loaded, the Review drawn for each
def test_two_cohorts_stay_loaded_and_the_sidebar_switches_between_them():
    at = open_page()
    load_demo(at, STAYS)
    stays = at.session_state["css.cohort"]
    assert not [s for s in at.sidebar.selectbox if s.key == "css_shelf_pick"]  # one: no choice
    load_demo(at, CODES)
    codes = at.session_state["css.cohort"]
    pick = at.sidebar.selectbox(key="css_shelf_pick")
    assert pick.options == [
        f"{stays.name} ({stays.n_records:,} records)",
        f"{codes.name} ({codes.n_records:,} records)",
    ]
    assert pick.value == codes.name
    assert any("Loaded in this session" in c.value for c in at.caption)
    codes_split = at.session_state["css.split"]

    pick.set_value(stays.name).run()
    assert at.session_state["css.cohort"] is stays
    assert (
        at.session_state["css.split"].n_train_patients
        + at.session_state["css.split"].n_holdout_patients
        == stays.n_patients
    )  # its own split came back with it
    at.switch_page("pages/2_Generate.py").run()
    assert not at.exception
    assert at.sidebar.selectbox(key="css_shelf_pick").value == stays.name
    assert at.number_input(key="train_steps")  # training offered on the chosen cohort

    at.switch_page("pages/3_Review.py").run()
    at.button(key="review_baseline").click().run()  # a set made for the stays

    at.sidebar.selectbox(key="css_shelf_pick").set_value(codes.name).run()
    assert at.session_state["css.cohort"] is codes and at.session_state["css.split"] is codes_split
    # the stays' set is refused here, named with the cohort it was made for
    refused = [c.value for c in at.caption if "cannot be compared with this cohort" in c.value]
    assert refused and f"(made for {stays.name})" in refused[0]
    assert at.multiselect(key="review_sets").value == []
    at.sidebar.selectbox(key="css_shelf_pick").set_value(stays.name).run()
    baseline = "Independent marginals (baseline)"
    assert at.multiselect(key="review_sets").value == [baseline]  # its choice came back
    at.sidebar.selectbox(key="css_shelf_pick").set_value(codes.name).run()
    at.switch_page("pages/1_Cohort.py").run()  # returning keeps it: no reset to the demo
    assert any(h.value == codes.name for h in at.subheader)


@pytest.mark.slow  # ~6 s on 2 shared cores: the 2,000-stay demo is loaded twice
def test_loading_the_same_data_again_keeps_one_entry():
    at = open_page()
    load_demo(at, STAYS)
    load_demo(at, STAYS)
    assert len(at.session_state["css.shelf"]) == 1


@pytest.mark.slow  # ~9 s: the demo and an eICU upload loaded, the Generate page drawn
def test_training_offers_the_family_of_the_cohort_in_use_and_names_it():
    from ui import ehrpd_view

    at = open_page()
    load_demo(at, STAYS)
    stays = at.session_state["css.cohort"]
    upload_eicu_visits(at)
    visits = at.session_state["css.visits"]
    at.switch_page("pages/2_Generate.py").run()
    assert not at.exception
    assert at.radio(key="train_family").value == ehrpd_view.FAMILY  # the visits are in use
    assert any(f"Trains on **{visits.name}**" in c.value for c in at.caption)
    at.radio(key="train_family").set_value(at.radio(key="train_family").options[1]).run()
    assert any(f"Trains on **{stays.name}**" in c.value for c in at.caption)
