"""Per-format option widgets of the Cohort page. Each returns the keyword options of its loader."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.data.icd import GRANULARITIES

_GRANULARITY_HELP = (
    "full: codes as recorded; 3digit: ICD-9 category as EHRDiff truncates (E-codes keep 4 characters, "
    "others 3); chapter: ICD chapter."
)


def _granularity(key: str) -> str:
    return st.selectbox("Code granularity", GRANULARITIES, index=1, key=key, help=_GRANULARITY_HELP)


def options_for(format_id: str, columns_hint: list[str] | None = None) -> dict[str, Any]:
    if format_id == "physionet2012":
        return {
            "aggregate": st.selectbox(
                "Within-hour aggregation", ("mean", "last", "min", "max"), key="opt_pn_agg"
            )
        }
    if format_id == "eicu_diagnosis":
        versions = st.multiselect("ICD versions", (9, 10), default=[9], key="opt_eicu_ver")
        return {"granularity": _granularity("opt_eicu_gran"), "versions": tuple(versions)}
    if format_id == "mimic3_diagnoses":
        per = st.radio(
            "One record per", ("admission", "patient"), horizontal=True, key="opt_m3_per"
        )
        return {"per": per, "granularity": _granularity("opt_m3_gran")}
    if format_id == "mimic4_diagnoses":
        per = st.radio(
            "One record per", ("admission", "patient"), horizontal=True, key="opt_m4_per"
        )
        versions = st.multiselect("ICD versions", (9, 10), default=[9, 10], key="opt_m4_ver")
        return {"per": per, "granularity": _granularity("opt_m4_gran"), "versions": tuple(versions)}
    if format_id == "wide_table":
        c1, c2 = st.columns(2)
        id_col = c1.text_input("Id column (blank = detect)", key="opt_wide_id").strip() or None
        label_col = c2.text_input("Label column (optional)", key="opt_wide_label").strip() or None
        overrides = st.text_input(
            "Type overrides (optional)",
            key="opt_wide_types",
            placeholder="age=numeric, notes=drop",
            help="column=kind pairs; kind is binary, categorical, numeric or drop.",
        )
        types = {}
        for part in filter(None, (p.strip() for p in overrides.split(","))):
            col, _, kind = part.partition("=")
            types[col.strip()] = kind.strip()
        return {"id_column": id_col, "label_column": label_col, "types": types}
    if format_id == "long_timeseries":
        c1, c2, c3, c4 = st.columns(4)
        opts = {
            "id_column": c1.text_input("Id column", "id", key="opt_long_id"),
            "time_column": c2.text_input("Time column", "time", key="opt_long_time"),
            "variable_column": c3.text_input("Variable column", "variable", key="opt_long_var"),
            "value_column": c4.text_input("Value column", "value", key="opt_long_val"),
        }
        c1, c2, c3, c4 = st.columns(4)
        opts["time_unit"] = c1.selectbox(
            "Numeric times are in", ("hours", "minutes", "days", "seconds"), key="opt_long_unit"
        )
        opts["step_hours"] = c2.number_input("Step (hours)", 0.25, 168.0, 1.0, key="opt_long_step")
        opts["n_steps"] = int(c3.number_input("Steps", 1, 10_000, 48, key="opt_long_n"))
        opts["aggregate"] = c4.selectbox(
            "Aggregation", ("mean", "last", "first", "min", "max"), key="opt_long_agg"
        )
        c1, c2 = st.columns(2)
        static_id = c1.text_input("Static table: id column (blank = detect)", key="opt_long_sid")
        label_col = c2.text_input("Static table: label column (optional)", key="opt_long_label")
        opts["static_id_column"] = static_id.strip() or None
        opts["label_column"] = label_col.strip() or None
        return opts
    if format_id == "meds":
        c1, c2, c3 = st.columns(3)
        rule = c1.selectbox(
            "Visits from",
            ("auto", "column", "code", "window"),
            key="opt_meds_rule",
            help="auto: the visit-id column when there is one, else a time window; code: a visit "
            "starts at each event whose code starts with the prefix.",
        )
        return {
            "visit_rule": None if rule == "auto" else rule,
            "visit_column": c2.text_input("Visit-id column", "visit_id", key="opt_meds_col"),
            "visit_code": c2.text_input(
                "Visit-start code prefix", "HOSPITAL_ADMISSION", key="opt_meds_code"
            ),
            "window_hours": c3.number_input(
                "Window (hours)", 0.5, 24.0 * 365, 24.0, key="opt_meds_window"
            ),
        }
    if format_id == "mimic_visits":
        return {"granularity": _granularity("opt_mv_gran")}
    if format_id == "eicu_visits":
        c1, c2 = st.columns(2)
        min_visits = c2.number_input(
            "Keep patients with at least this many unit stays",
            1,
            20,
            2,
            key="opt_ev_min",
            help="2 keeps the patients who came back: the sequences EHRPD learns from.",
        )
        return {"granularity": _granularity("opt_ev_gran"), "min_visits": int(min_visits)}
    return {}
