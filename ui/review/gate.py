"""The release gate on the Review page: the steward's thresholds, each set's verdict per check."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from core.release.gate import (
    CHECKS,
    FLOORS,
    GROUPS,
    OPTIONAL,
    GateThresholds,
    GateVerdict,
    detectable_text,
)


def gate_controls(title: str) -> GateThresholds:
    """The gate section's heading, what the gate does, and the thresholds."""
    st.subheader(title)
    st.caption(
        "A set is releasable only when it is private enough (privacy checks) and useful enough "
        "(fidelity floors), by thresholds a data steward sets. A steward releases a set: its "
        "manifest is signed and recorded in the ledger; a set that does not pass needs an explicit "
        "override with a reason."
    )
    return gate_thresholds()


def gate_verdicts(verdicts: dict[str, GateVerdict]) -> None:
    """Each set's verdict, then one row per check with its estimate and bounds."""
    st.markdown(gate_summary(verdicts))
    st.dataframe(
        gate_frame(verdicts).style.format({"estimate": "{:.4g}"}, na_rep=""),
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


GATE_HELP = {
    "mia_advantage": "Allowed best TPR - FPR of the distance attacker among thresholds that flag "
    "at most 10% of the patients the model never saw (every training patient is a target).",
    "exact_copies": "Allowed excess share of synthetic records identical to a training record over "
    "those identical to a holdout record.",
    "dcr_share": "Allowed excess of the share of synthetic records closer to a training patient "
    "than to a holdout one, over 0.5.",
    "attribute_gap": "How much better an attacker may guess training patients' hidden features "
    "than others'.",
    "invalid_records": "Share of released records allowed to break a rule no real record can "
    "break (min above max, a mean on its min or max while they differ, a flag not 0 or 1); "
    "values beyond the training range are listed in the validity row, not judged here "
    "(real unseen records show them too). 0 = no impossible record.",
    "dimwise_r2": "Lowest dimension-wise probability R² allowed (each feature's prevalence or "
    "mean, synthetic against the training split; 1 = every one matches; empty = not checked).",
    "tstr_deficit": "How far the AUROC of a random forest trained on the synthetic set may fall "
    "below the same forest trained on the real training split, both tested on the holdout "
    "(cohorts with a label; empty = not checked).",
    "detection_auroc": "Highest AUROC allowed of gradient-boosted trees telling synthetic from "
    "real training records (0.5 = indistinguishable, 1 = every record told apart; empty = not "
    "checked). The Review's detection rows name the columns it leans on.",
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
