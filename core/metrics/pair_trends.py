"""Column-pair trends (SDMetrics' Column Pair Trends): does each pair of columns move together
in synthetic records as in real ones?

- two numeric columns: correlation similarity, 1 - |r_real - r_synthetic| / 2, Pearson r over
  the records where both are recorded (pairwise complete, as SDMetrics);
- any other pair: contingency similarity, 1 - total variation distance between the real and
  synthetic joint tables of the two columns. Numeric columns enter such pairs cut into 10 equal
  bins of the real range (the same edges for both sets; SDMetrics bins each set on its own
  range), a missing value is a level of its own, codes are 0/1 columns.

Every pair is scored at once from cross-product matrices: a pair's joint table is a block of
``I^T I / n`` over the columns' level indicators (the most common real level of each column
left out and recovered from the margins), so hundreds of thousands of pairs take a few matrix
products. Value = mean over pairs (1 = every pair as in real data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.errors import ConfigError
from core.metrics.base import MetricResult
from core.metrics.ids import MetricId

BINS = 10
MIN_JOINT = 3  # records with both values recorded, in each set, for a correlation
WORST = 50
HEATMAP_COLUMNS = 20


def _levels(real: np.ndarray, synth: np.ndarray, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer levels of one column in both sets (-1 = missing, a level of its own later)."""
    if numeric:
        r, s = real.astype(float), synth.astype(float)
        obs = r[~np.isnan(r)]
        lo, hi = (obs.min(), obs.max()) if len(obs) else (0.0, 1.0)
        edges = np.linspace(lo, hi, BINS + 1)[1:-1]

        def cut(v: np.ndarray) -> np.ndarray:
            out = np.searchsorted(edges, v, side="right").astype(np.int64)
            out[np.isnan(v)] = -1
            return out

        return cut(r), cut(s)
    r = pd.Series(real, dtype=object)
    s = pd.Series(synth, dtype=object)
    missing_r, missing_s = r.isna().to_numpy(), s.isna().to_numpy()
    values = pd.Index(pd.concat([r[~missing_r], s[~missing_s]]).astype(str).unique())
    lr = values.get_indexer(r.astype(str)).astype(np.int64)
    ls = values.get_indexer(s.astype(str)).astype(np.int64)
    lr[missing_r], ls[missing_s] = -1, -1
    return lr, ls


class _Indicators:
    """Level indicators of every column except its most common real level."""

    def __init__(self, real_levels: list[np.ndarray], synth_levels: list[np.ndarray]):
        self.column_of: list[int] = []
        rows_r, cols_r, rows_s, cols_s = [], [], [], []
        dim = 0
        for c, (lr, ls) in enumerate(zip(real_levels, synth_levels, strict=True)):
            values, counts = np.unique(lr, return_counts=True)
            ref = values[counts.argmax()]
            others = np.setdiff1d(np.union1d(values, np.unique(ls)), [ref])
            position = {v: dim + k for k, v in enumerate(others)}
            for levels, rows, cols in ((lr, rows_r, cols_r), (ls, rows_s, cols_s)):
                keep = np.flatnonzero(levels != ref)
                rows.append(keep)
                cols.append(np.searchsorted(others, levels[keep]) + dim)
            self.column_of.extend([c] * len(position))
            dim += len(others)
        self.dim = dim
        n_r, n_s = len(real_levels[0]), len(synth_levels[0])
        self.real = self._matrix(rows_r, cols_r, n_r, dim)
        self.synth = self._matrix(rows_s, cols_s, n_s, dim)
        n_cols = len(real_levels)
        self.blocks = sp.csr_array(
            (np.ones(dim), (np.arange(dim), np.asarray(self.column_of, dtype=np.int64))),
            shape=(dim, n_cols),
        )

    @staticmethod
    def _matrix(rows: list, cols: list, n: int, dim: int) -> sp.csr_array:
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        return sp.csr_array((np.ones(len(r)), (r, c)), shape=(n, dim))


def contingency_tvd(real_levels: list[np.ndarray], synth_levels: list[np.ndarray]) -> np.ndarray:
    """C x C matrix: total variation distance between the real and synthetic joint tables of
    every pair of columns (diagonal meaningless)."""
    ind = _Indicators(real_levels, synth_levels)
    n_cols = len(real_levels)
    if ind.dim == 0:
        return np.zeros((n_cols, n_cols))
    g = (ind.real.T @ ind.real).toarray() / ind.real.shape[0]
    g -= (ind.synth.T @ ind.synth).toarray() / ind.synth.shape[0]
    dm = np.diag(g).copy()  # an indicator times itself is its marginal
    b = ind.blocks
    dr = (b.T @ g).T  # d x C: sums over each column's block (g is symmetric)
    term1 = (b.T @ (b.T @ np.abs(g)).T).T
    term2 = b.T @ np.abs(dm[:, None] - dr)
    d_marg = b.T @ dm
    d_joint = b.T @ dr
    term4 = np.abs(d_joint - d_marg[:, None] - d_marg[None, :])
    return 0.5 * (term1 + term2 + term2.T + term4)


def pairwise_correlations(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r of every pair of columns over the rows where both are recorded, and how many
    such rows each pair has (columns standardised first, for numerical accuracy)."""
    x = np.asarray(values, dtype=np.float64)
    observed = ~np.isnan(x)
    mean = np.nanmean(np.where(observed.any(0), x, 0.0), axis=0) if len(x) else 0.0
    sd = np.nanstd(x, axis=0)
    z = np.where(observed, (x - mean) / np.where(sd > 0, sd, 1.0), 0.0)
    m = observed.astype(np.float64)
    n = m.T @ m
    s = z.T @ m  # s[a, b] = sum of column a over rows where a and b are recorded
    ss = (z * z).T @ m
    sab = z.T @ z
    with np.errstate(invalid="ignore", divide="ignore"):
        var_a = n * ss - s * s
        r = (n * sab - s * s.T) / np.sqrt(var_a * var_a.T)
    r[(var_a <= 1e-9 * np.maximum(n, 1) ** 2) | (var_a.T <= 1e-9 * np.maximum(n, 1) ** 2)] = np.nan
    return np.clip(r, -1.0, 1.0), n


def pair_trends(
    real: pd.DataFrame | None,
    synth: pd.DataFrame | None,
    kinds: dict[str, str],
    real_codes: np.ndarray | sp.sparray | None = None,
    synth_codes: np.ndarray | sp.sparray | None = None,
    code_names: tuple[str, ...] | list[str] = (),
) -> MetricResult:
    """Column-pair trends of every pair of columns: ``kinds`` maps each static column of the
    frames to ``numeric``, ``binary`` or ``categorical``; codes (0/1 matrices, one column per
    name in ``code_names``) are 0/1 columns. Value = mean pair score; ``per_feature`` lists the
    worst pairs; ``details['heatmap']`` holds the scores among the columns of the worst pairs."""
    names = list(kinds)
    numeric = [k == "numeric" for k in kinds.values()]
    real_levels, synth_levels = [], []
    for name, is_num in zip(names, numeric, strict=True):
        if real is None or synth is None or name not in real or name not in synth:
            raise ConfigError(f"column '{name}' is missing from the real or the synthetic table")
        lr, ls = _levels(real[name].to_numpy(), synth[name].to_numpy(), is_num)
        real_levels.append(lr)
        synth_levels.append(ls)
    if real_codes is not None and synth_codes is not None and len(code_names):
        rc = sp.csc_array(real_codes) if sp.issparse(real_codes) else sp.csc_array(real_codes)
        sc = sp.csc_array(synth_codes) if sp.issparse(synth_codes) else sp.csc_array(synth_codes)
        for j, code in enumerate(code_names):
            real_levels.append((rc[:, [j]].toarray()[:, 0] > 0).astype(np.int64))
            synth_levels.append((sc[:, [j]].toarray()[:, 0] > 0).astype(np.int64))
            names.append(str(code))
            numeric.append(False)
    n_cols = len(names)
    if n_cols < 2:
        raise ConfigError("column-pair trends need at least two columns")
    if not real_levels[0].size or not synth_levels[0].size:
        raise ConfigError("column-pair trends need records in both sets")
    numeric_arr = np.asarray(numeric)
    score = 1.0 - contingency_tvd(real_levels, synth_levels)
    measure = np.full((n_cols, n_cols), "contingency", dtype=object)
    r_real = np.full((n_cols, n_cols), np.nan)
    r_syn = np.full((n_cols, n_cols), np.nan)
    num_idx = np.flatnonzero(numeric_arr)
    undefined = 0
    if len(num_idx) >= 2:
        cols = [names[i] for i in num_idx]
        a, n_a = pairwise_correlations(real[cols].to_numpy(dtype=float))
        b, n_b = pairwise_correlations(synth[cols].to_numpy(dtype=float))
        ok = (n_a >= MIN_JOINT) & (n_b >= MIN_JOINT) & np.isfinite(a) & np.isfinite(b)
        block = np.ix_(num_idx, num_idx)
        sim = np.where(ok, 1.0 - np.abs(a - b) / 2.0, np.nan)
        score[block] = sim
        measure[block] = "correlation"
        r_real[block], r_syn[block] = np.where(ok, a, np.nan), np.where(ok, b, np.nan)
        iu = np.triu_indices(len(num_idx), 1)
        undefined = int((~ok[iu]).sum())
    iu = np.triu_indices(n_cols, 1)
    pair_scores = score[iu]
    kept = np.isfinite(pair_scores)
    if not kept.any():
        raise ConfigError("no column pair could be scored (every correlation is undefined)")
    order = np.argsort(np.where(kept, pair_scores, np.inf), kind="stable")[: min(WORST, kept.sum())]
    worst = pd.DataFrame(
        {
            "column_1": [names[iu[0][k]] for k in order],
            "column_2": [names[iu[1][k]] for k in order],
            "measure": [measure[iu[0][k], iu[1][k]] for k in order],
            "real_correlation": [r_real[iu[0][k], iu[1][k]] for k in order],
            "synthetic_correlation": [r_syn[iu[0][k], iu[1][k]] for k in order],
            "score": pair_scores[order],
        }
    )
    heat_cols: list[int] = []
    for k in order:
        for c in (iu[0][k], iu[1][k]):
            if c not in heat_cols and len(heat_cols) < HEATMAP_COLUMNS:
                heat_cols.append(int(c))
    heat = score[np.ix_(heat_cols, heat_cols)].copy()
    np.fill_diagonal(heat, np.nan)
    is_corr = measure[iu] == "correlation"
    return MetricResult(
        id=MetricId.PAIR_TRENDS,
        name="Column-pair trends (mean pair similarity)",
        category="fidelity",
        value=float(pair_scores[kept].mean()),
        higher_is_better=True,
        ideal=1.0,
        lower_bound=0.0,
        upper_bound=1.0,
        per_feature=worst,
        details={
            "pairs": int(kept.sum()),
            "correlation_pairs": int((is_corr & kept).sum()),
            "contingency_pairs": int((~is_corr & kept).sum()),
            "undefined_correlations": undefined,
            "mean_correlation_similarity": float(pair_scores[is_corr & kept].mean())
            if (is_corr & kept).any()
            else float("nan"),
            "mean_contingency_similarity": float(pair_scores[~is_corr & kept].mean())
            if (~is_corr & kept).any()
            else float("nan"),
            "worst_pair": f"{worst['column_1'].iloc[0]} x {worst['column_2'].iloc[0]}",
            "worst_pairs": "; ".join(
                f"{a} x {b} {s:.2f}"
                for a, b, s in worst[["column_1", "column_2", "score"]].head(5).to_numpy()
            ),
            "bins": BINS,
            "heatmap": {
                "columns": [names[c] for c in heat_cols],
                "scores": [[None if np.isnan(v) else float(v) for v in row] for row in heat],
            },
        },
    )
