"""Does the forecast latent help predict outcomes? (DDL-CXR's Table 5, on the Hannover outcomes.)

For each pair, an outcome known at the later exam (``icu_7d``: still in the ICU a week later;
``death``) is predicted by a regularised logistic regression from:
- ``last CXR + labs``: the prior image's pooled latent, the last value of each lab and the gap;
- ``last CXR + forecast + labs``: the same plus the pooled latent of the forecast mean;
- ``last CXR + true later CXR + labs``: the same with the true later image instead (an oracle:
  what a perfect forecast could add).
Predictions are out-of-fold over patient folds, and every latent comes from a model that did not
see that patient. AUROC with 95% patient-bootstrap CIs, and the paired AUROC difference to the
first row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.cxr.data import PairRecord
from core.metrics.bootstrap import cluster_resamples, percentile_ci

OUTCOMES = {"icu_7d": "still in ICU 7 days after the later image", "death": "in-hospital death"}
MIN_POSITIVE_PATIENTS = 5


def lab_features(pair: PairRecord, variables: tuple[str, ...]) -> np.ndarray:
    """Last value of each lab in the window (NaN when unobserved) and the log gap."""
    w = pair.window
    last = [
        float(w.loc[w["variable"] == v, "value"].iloc[-1]) if (w["variable"] == v).any() else np.nan
        for v in variables
    ]
    return np.array([*last, np.log(pair.gap_hours)], dtype=float)


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def outcome_table(
    per_pair: pd.DataFrame,
    pairs: list[PairRecord],
    forecast_method: str,
    variables: tuple[str, ...],
    fold_of_patient: dict[str, int],
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """AUROC rows per outcome and feature set (see the module docstring)."""
    by_method = {m: g.set_index("pair") for m, g in per_pair.groupby("method")}
    keys = sorted(by_method[forecast_method].index)
    z_prior = np.stack(by_method[forecast_method].loc[keys, "z_prior"])
    z_fc = np.stack(by_method[forecast_method].loc[keys, "z_mean"])
    z_true = np.stack(by_method[forecast_method].loc[keys, "z_true"])
    labs = np.stack([lab_features(pairs[k], variables) for k in keys])
    patients = np.array([pairs[k].patient_id for k in keys])
    folds = np.array([fold_of_patient[p] for p in patients])
    feature_sets = {
        "last CXR + labs": np.hstack([z_prior, labs]),
        "last CXR + forecast + labs": np.hstack([z_prior, z_fc, labs]),
        "last CXR + true later CXR + labs (oracle)": np.hstack([z_prior, z_true, labs]),
    }
    rows = []
    for outcome, meaning in OUTCOMES.items():
        y_all = np.array([pairs[k].outcome(outcome) for k in keys])
        known = y_all >= 0
        y, pat, fold = y_all[known], patients[known], folds[known]
        positive_patients = len(set(pat[y == 1]))
        if positive_patients < MIN_POSITIVE_PATIENTS or len(set(pat[y == 0])) < 2:
            rows.append(
                {
                    "outcome": outcome,
                    "meaning": meaning,
                    "features": "(not estimable)",
                    "pairs": int(known.sum()),
                    "positive patients": positive_patients,
                    "AUROC": np.nan,
                    "AUROC CI": (np.nan, np.nan),
                    "vs first": np.nan,
                    "vs first CI": (np.nan, np.nan),
                }
            )
            continue
        resamples = cluster_resamples(pat, n_boot, seed)
        base_p = None
        for name, x_all in feature_sets.items():
            x = x_all[known]
            p = np.zeros(len(y))
            for f in np.unique(fold):
                train, test = fold != f, fold == f
                if len(np.unique(y[train])) < 2:
                    p[test] = y[train].mean()
                    continue
                clf = make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True),
                    StandardScaler(),
                    LogisticRegression(C=0.05, max_iter=2000),
                )
                clf.fit(x[train], y[train])
                p[test] = clf.predict_proba(x[test])[:, 1]
            auc = _auroc(y, p)
            row = {
                "outcome": outcome,
                "meaning": meaning,
                "features": name,
                "pairs": len(y),
                "positive patients": positive_patients,
                "AUROC": auc,
                "AUROC CI": percentile_ci(lambda r, y=y, p=p: _auroc(y[r], p[r]), resamples),
                "vs first": np.nan,
                "vs first CI": (np.nan, np.nan),
            }
            if base_p is None:
                base_p = p
            else:
                row["vs first"] = auc - _auroc(y, base_p)
                row["vs first CI"] = percentile_ci(
                    lambda r, y=y, p=p, b=base_p: _auroc(y[r], p[r]) - _auroc(y[r], b[r]),
                    resamples,
                )
            rows.append(row)
    return pd.DataFrame(rows)
