"""What the Cohort page shows: counts, label balance, feature types, top codes, missingness."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.clinical import binary_summary, implausible_values, value_label
from core.data.cohort import Cohort
from core.data.icd_text import describe


@dataclass(frozen=True, eq=False)
class CohortSummary:
    n_records: int
    n_patients: int
    modalities: tuple[str, ...]
    label_name: str | None
    label_counts: pd.DataFrame | None  # class, records, share
    features: pd.DataFrame  # one row per static feature / temporal variable
    top_codes: pd.DataFrame | None  # code, description (core.data.icd_text), records, prevalence
    codes_per_record: np.ndarray | None
    static_missing: pd.Series | None  # share missing per static feature
    temporal_observed: pd.DataFrame | None  # variables x steps, share of records observed
    # columns with values outside physiological ranges (core.data.clinical): counts, no records
    implausible: pd.DataFrame | None = None


def _describe_numeric(values: np.ndarray) -> str:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return "all missing"
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return f"median {med:.4g} (IQR {q1:.4g}-{q3:.4g}), range {v.min():.4g}-{v.max():.4g}"


def summarize(cohort: Cohort, top_k: int = 25) -> CohortSummary:
    rows = []
    static_missing = None
    if cohort.static is not None:
        static_missing = cohort.static.isna().mean()
        for spec in cohort.static_features:
            col = cohort.static[spec.name]
            if spec.kind == "numeric":
                detail = _describe_numeric(col.to_numpy(dtype=float))
            elif spec.kind == "binary":
                detail = (
                    binary_summary(spec.name, float(np.nanmean(col.to_numpy(dtype=float))))
                    if col.notna().any()
                    else "all missing"
                )
            else:
                top = col.value_counts(normalize=True).head(3)
                detail = ", ".join(
                    f"{k if (label := value_label(spec.name, k)) is None else f'{label} ({k})'}"
                    f" {v:.0%}"
                    for k, v in top.items()
                )
            rows.append(
                {
                    "feature": spec.name,
                    "part": "static",
                    "type": spec.kind,
                    "unit": spec.unit or "",
                    "missing": float(col.isna().mean()),
                    "summary": detail,
                }
            )
    temporal_observed = None
    if cohort.temporal is not None:
        t = cohort.temporal
        observed = t.mask.mean(axis=0)  # [T, D]
        temporal_observed = pd.DataFrame(
            observed.T,
            index=list(t.variables),
            columns=[f"{i * t.step_hours:g}" for i in range(t.n_steps)],
        )
        any_obs = t.mask.any(axis=1)  # [N, D]
        for j, var in enumerate(t.variables):
            vals = t.values[:, :, j][t.mask[:, :, j]]
            rows.append(
                {
                    "feature": var,
                    "part": "temporal",
                    "type": "numeric",
                    "unit": t.units[j] or "",
                    "missing": float(1 - any_obs[:, j].mean()),
                    "summary": _describe_numeric(vals.astype(float))
                    if vals.size
                    else "never observed",
                }
            )
    top_codes = None
    per_record = None
    if cohort.codes is not None:
        prev = cohort.codes.prevalence()
        order = np.argsort(-prev, kind="stable")[:top_k]
        counts = np.asarray(cohort.codes.matrix.sum(axis=0)).ravel()
        top = [cohort.codes.vocabulary[i] for i in order]
        top_codes = pd.DataFrame(
            {
                "code": top,
                "description": [describe(c, cohort.codes.system) for c in top],
                "records": counts[order],
                "prevalence": prev[order],
            }
        )
        per_record = cohort.codes.codes_per_record()
    label_counts = None
    if cohort.labels is not None:
        classes = list(cohort.label_classes) or [
            str(i) for i in range(int(cohort.labels.max()) + 1)
        ]
        counts = [int((cohort.labels == i).sum()) for i in range(len(classes))]
        unknown = int((cohort.labels < 0).sum())
        if unknown:
            classes.append("unknown")
            counts.append(unknown)
        label_counts = pd.DataFrame({"class": classes, "records": counts})
        label_counts["share"] = label_counts["records"] / cohort.n_records
    features = pd.DataFrame(rows, columns=["feature", "part", "type", "unit", "missing", "summary"])
    return CohortSummary(
        n_records=cohort.n_records,
        n_patients=cohort.n_patients,
        modalities=cohort.modalities,
        label_name=cohort.label_name,
        label_counts=label_counts,
        features=features,
        top_codes=top_codes,
        codes_per_record=per_record,
        static_missing=static_missing,
        temporal_observed=temporal_observed,
        implausible=implausible_values(cohort),
    )
