"""Anonymeter's three privacy risks (Giomi et al., "A Unified Framework for Quantifying Privacy
Risk in Synthetic Data", PoPETs 2023), implemented from the paper: singling out, linkability and
attribute inference, each measured against the training patients (the *main* attack), holdout
patients the generator never saw (the *control* attack) and a random-guessing *baseline*.

The risk is the main attack's success beyond the control's, normalised by what was left to win:
``(main - control) / (1 - control)``; rates are Wilson-score estimates and the interval propagates
both rates' errors to first order (paper, section 4 and appendix). A risk near 0 means the
synthetic data lets an attacker do no better on training patients than on unseen ones.

Departures from the ``anonymeter`` 1.1.0 package, on purpose (``benchmarks/anonymeter_check.py``
runs both on the same data):

- the main attack runs on as many training records as there are holdout records, so main and
  control face the same odds (the package fits a size-correction curve instead);
- rates are out of the attacks actually made (the package divides by the number asked for,
  which understates the risk when fewer singling-out queries are found);
- in the mixed-type (Gower) distance, two missing values are equal and one missing value is at
  the largest distance (the package counts two missing values as different);
- a numeric inferred value is right within 5% of the true value (the package divides by the guess).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from core.data.records import ID_COLUMN, LABEL_COLUMN, EHRTable
from core.errors import ConfigError
from core.metrics.base import MetricResult
from core.metrics.ids import MetricId

N_ATTACKS = 500  # the package's default
CONFIDENCE = 0.95


# --- rates and risks -------------------------------------------------------------------------


def success_rate(n_total: int, n_success: float, z: float) -> tuple[float, float]:
    """Wilson-score centre and half-width of a success rate at the normal quantile ``z``."""
    if n_total <= 0:
        raise ConfigError("a success rate needs at least one attack")
    z2 = z * z
    denominator = n_total + z2
    centre = (n_success + 0.5 * z2) / denominator
    half = (z / denominator) * math.sqrt(n_success * (n_total - n_success) / n_total + 0.25 * z2)
    return centre, half


def residual_risk(details: dict, z: float) -> tuple[float, float]:
    """The main attack's success beyond the control's, ``(main - control) / (1 - control)``, and
    its propagated error, recomputed from the attack counts at quantile ``z`` (unclamped)."""
    main, e_main = success_rate(details["n_main"], details["success_main"], z)
    control, e_control = success_rate(details["n_control"], details["success_control"], z)
    if control >= 1.0:
        return 0.0, 1.0  # control always succeeds: nothing can be told
    value = (main - control) / (1.0 - control)
    d_main = 1.0 / (1.0 - control)
    d_control = (main - 1.0) / (1.0 - control) ** 2
    return value, math.sqrt((e_main * d_main) ** 2 + (e_control * d_control) ** 2)


def z_for(confidence: float) -> float:
    return float(norm.ppf(0.5 * (1.0 + confidence)))


def _clamp(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def _result(metric_id: str, name: str, counts: dict, extra: dict) -> MetricResult:
    z = z_for(CONFIDENCE)
    value, error = residual_risk(counts, z)
    main = success_rate(counts["n_main"], counts["success_main"], z)[0]
    control = success_rate(counts["n_control"], counts["success_control"], z)[0]
    baseline = success_rate(counts["n_baseline"], counts["success_baseline"], z)[0]
    return MetricResult(
        id=metric_id,
        name=name,
        category="privacy",
        value=_clamp(value),
        higher_is_better=False,
        ideal=0.0,
        lower_bound=0.0,
        upper_bound=1.0,
        ci=(_clamp(value - error), _clamp(value + error)),
        details={
            **counts,
            "risk_unclamped": value,
            "risk_error": error,
            "confidence": CONFIDENCE,
            "main_rate": main,
            "control_rate": control,
            "baseline_rate": baseline,
            # the package's warning: an attack no better than guessing cannot be trusted
            "attack_beats_baseline": bool(main > baseline),
            **extra,
        },
    )


# --- the data the attacks see ----------------------------------------------------------------


@dataclass(frozen=True)
class AttackTables:
    """Train (members), holdout (control) and synthetic records as one float matrix each:
    categorical columns as shared integer codes (-1 = missing), numeric ones scaled by their range
    over all three tables (so a numeric difference is at most 1, as in Gower's distance)."""

    train: np.ndarray
    holdout: np.ndarray
    synth: np.ndarray
    columns: tuple[str, ...]
    categorical: np.ndarray  # bool per column


def attack_tables(train: EHRTable, holdout: EHRTable, synth: EHRTable) -> AttackTables:
    frames = [t.to_frame().drop(columns=[ID_COLUMN]) for t in (train, holdout, synth)]
    kinds = {f.name: f.kind for f in train.static_features}
    columns = list(frames[0].columns)
    joined = pd.concat(frames, ignore_index=True)
    cat = np.array([kinds.get(c, "categorical") != "numeric" for c in columns])
    out = np.empty(joined.shape, dtype=np.float32)
    for j, c in enumerate(columns):
        if cat[j]:
            out[:, j] = pd.factorize(joined[c], use_na_sentinel=True)[0]
        else:
            v = pd.to_numeric(joined[c], errors="coerce").to_numpy(np.float64)
            span = np.nanmax(v) - np.nanmin(v) if np.isfinite(v).any() else 0.0
            out[:, j] = (v - np.nanmin(v)) / span if span > 0 else np.where(np.isnan(v), v, 0.0)
    n1, n2 = len(frames[0]), len(frames[0]) + len(frames[1])
    return AttackTables(out[:n1], out[n1:n2], out[n2:], tuple(columns), cat)


def _one_hot(x: np.ndarray, widths: np.ndarray) -> torch.Tensor:
    """Categorical codes (-1 = missing) as one block of indicators per column."""
    offsets = np.r_[0, np.cumsum(widths)[:-1]]
    index = torch.as_tensor((x.astype(np.int64) + 1 + offsets).astype(np.int64))
    out = torch.zeros(len(x), int(widths.sum()))
    return out.scatter_(1, index, 1.0)


def gower_nearest(
    queries: np.ndarray, candidates: np.ndarray, categorical: np.ndarray, k: int = 1
) -> np.ndarray:
    """Indices of the ``k`` nearest candidates of every query under the mixed-type distance:
    categorical columns count 1 when they differ, numeric ones their (range-scaled) absolute
    difference; two missing values are equal, one missing value counts 1."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    c = np.ascontiguousarray(candidates, dtype=np.float32)
    d = torch.zeros(len(q), len(c))
    cat = np.asarray(categorical, dtype=bool)
    if cat.any():  # mismatches = categorical columns - matching levels (one matrix product)
        widths = np.maximum(q[:, cat].max(axis=0, initial=-1), c[:, cat].max(axis=0, initial=-1))
        widths = widths.astype(np.int64) + 2
        d += float(cat.sum()) - _one_hot(q[:, cat], widths) @ _one_hot(c[:, cat], widths).T
    if (~cat).any():
        qn, cn = torch.as_tensor(q[:, ~cat]), torch.as_tensor(c[:, ~cat])
        chunk = max(1, 8_000_000 // max(len(cn) * qn.shape[1], 1))
        for i in range(0, len(qn), chunk):
            a, b = qn[i : i + chunk, None, :], cn[None, :, :]
            a_nan, b_nan = torch.isnan(a), torch.isnan(b)
            diff = torch.where(a_nan | b_nan, (a_nan ^ b_nan).float(), (a - b).abs())
            d[i : i + chunk] += diff.sum(-1)
    return torch.topk(d, min(k, len(c)), dim=1, largest=False).indices.numpy()


def _members_like_control(tables: AttackTables, rng: np.random.Generator) -> np.ndarray:
    """As many training records as holdout records, so main and control attacks face equal odds."""
    n = min(len(tables.train), len(tables.holdout))
    if n < 2:
        raise ConfigError("Anonymeter's attacks need at least two training and two holdout records")
    return tables.train[rng.choice(len(tables.train), n, replace=False)]


# --- singling out ----------------------------------------------------------------------------

EQ, NE, GT, LT, GE, LE, NULL = range(7)


def _unique_rows(x: np.ndarray) -> np.ndarray:
    return pd.DataFrame(x).drop_duplicates().to_numpy(np.float32)


_COMPARE = {
    EQ: np.equal,
    NE: lambda v, t: (v != t) & ~np.isnan(v),
    GT: np.greater,
    LT: np.less,
    GE: np.greater_equal,
    LE: np.less_equal,
    NULL: lambda v, _t: np.isnan(v),
}


def _matches(x: np.ndarray, cols: np.ndarray, ops: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """How many rows of ``x`` each conjunctive query (columns, operators, values) matches."""
    counts = np.empty(len(cols), dtype=np.int64)
    step = max(1, 4_000_000 // max(len(x), 1))
    for i in range(0, len(cols), step):
        c, o, t = cols[i : i + step], ops[i : i + step], vals[i : i + step]
        hit = np.ones((len(x), len(c)), dtype=bool)
        for j in range(c.shape[1]):
            v = x[:, c[:, j]]  # rows, queries
            term = np.empty_like(hit)
            for op in np.unique(o[:, j]):
                sel = o[:, j] == op
                with np.errstate(invalid="ignore"):
                    term[:, sel] = _COMPARE[int(op)](v[:, sel], t[sel, j])
            hit &= term
        counts[i : i + step] = hit.sum(axis=0)
    return counts


def _record_queries(
    syn: np.ndarray, categorical: np.ndarray, n_cols: int, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's multivariate predicates: a random synthetic record, ``n_cols`` random columns;
    a categorical value must be equal, a numeric one at least (above the median) or at most
    (below it) the record's; a missing value must be missing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column has no median
        medians = np.nanmedian(np.where(categorical, np.nan, syn), axis=0)
    rows = syn[rng.integers(0, len(syn), batch)]
    cols = np.sort(np.argsort(rng.random((batch, syn.shape[1])), axis=1)[:, :n_cols], axis=1)
    vals = np.take_along_axis(rows, cols, axis=1)
    numeric_op = np.where(vals > medians[cols], GE, LE)
    ops = np.where(categorical[cols], EQ, numeric_op)
    ops = np.where(np.isnan(vals), NULL, ops)
    return cols, ops, vals


def _univariate_queries(
    syn: np.ndarray, categorical: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's univariate predicates: a value seen once, the minimum or maximum of a
    numeric column, or missingness seen once."""
    cols, ops, vals = [], [], []
    for j in range(syn.shape[1]):
        col = syn[:, j]
        present = col[~np.isnan(col)]
        if np.isnan(col).sum() == 1:
            cols.append(j), ops.append(NULL), vals.append(np.nan)
        if not categorical[j] and len(present):
            cols += [j, j]
            ops += [LE, GE]
            vals += [present.min(), present.max()]
        values, counts = np.unique(present, return_counts=True)
        for v in values[counts == 1]:
            cols.append(j), ops.append(EQ), vals.append(v)
    return (
        np.asarray(cols, np.int64).reshape(-1, 1),
        np.asarray(ops, np.int64).reshape(-1, 1),
        np.asarray(vals, np.float32).reshape(-1, 1),
    )


def _random_queries(
    syn: np.ndarray, categorical: np.ndarray, n: int, n_cols: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The baseline: random columns, a random value each from the synthetic column, a random
    operator (=, != for categorical columns; =, !=, >, <, >=, <= for numeric ones)."""
    cols = np.argsort(rng.random((n, syn.shape[1])), axis=1)[:, :n_cols]
    rows = rng.integers(0, len(syn), size=cols.shape)
    vals = syn[rows, cols]
    ops = np.where(
        categorical[cols],
        rng.integers(EQ, NE + 1, cols.shape),
        rng.integers(EQ, LE + 1, cols.shape),
    )
    return cols, np.where(np.isnan(vals), NULL, ops), vals


def singling_out(
    tables: AttackTables,
    *,
    n_attacks: int = N_ATTACKS,
    n_cols: int = 3,
    mode: str = "multivariate",
    max_attempts: int = 50_000,
    seed: int = 0,
) -> MetricResult:
    """Singling out: predicates that match exactly one synthetic record are tried on the training
    (main) and holdout (control) records; an attack succeeds when its predicate matches exactly
    one of them ("there is exactly one patient who ...")."""
    if mode not in ("multivariate", "univariate"):
        raise ConfigError(f"Singling-out mode must be multivariate or univariate, got {mode!r}.")
    rng = np.random.default_rng(seed)
    syn = _unique_rows(tables.synth)
    members = _unique_rows(_members_like_control(tables, rng))
    control = _unique_rows(tables.holdout)
    n_cols = 1 if mode == "univariate" else min(n_cols, syn.shape[1])
    found: dict[bytes, tuple] = {}
    if mode == "univariate":
        cols, ops, vals = _univariate_queries(syn, tables.categorical)
        order = rng.permutation(len(cols))
        cols, ops, vals = cols[order], ops[order], vals[order]
        single = _matches(syn, cols, ops, vals) == 1
        for q in zip(cols[single], ops[single], vals[single], strict=True):
            found.setdefault(b"".join(a.tobytes() for a in q), q)
    attempts = 0
    while mode == "multivariate" and len(found) < n_attacks and attempts < max_attempts:
        batch = min(1000, max_attempts - attempts)
        cols, ops, vals = _record_queries(syn, tables.categorical, n_cols, batch, rng)
        single = _matches(syn, cols, ops, vals) == 1
        for q in zip(cols[single], ops[single], vals[single], strict=True):
            found.setdefault(b"".join(a.tobytes() for a in q), q)
        attempts += batch
    queries = list(found.values())[:n_attacks]
    if not queries:
        raise ConfigError("no predicate singles out a synthetic record (every record repeats)")
    cols, ops, vals = (np.stack(part) for part in zip(*queries, strict=True))
    base = _random_queries(syn, tables.categorical, len(queries), n_cols, rng)
    counts = {
        "n_main": len(queries),
        "success_main": int((_matches(members, cols, ops, vals) == 1).sum()),
        "n_control": len(queries),
        "success_control": int((_matches(control, cols, ops, vals) == 1).sum()),
        "n_baseline": len(queries),
        "success_baseline": int((_matches(members, *base) == 1).sum()),
    }
    return _result(
        MetricId.SINGLING_OUT,
        f"Anonymeter singling-out risk ({mode})",
        counts,
        {"mode": mode, "n_cols": n_cols, "queries_asked": n_attacks, "n_targets": len(members)},
    )


# --- linkability -----------------------------------------------------------------------------


def default_link_columns(tables: AttackTables) -> tuple[list[int], list[int]]:
    """Two attackers' datasets: the columns split alternately (label left out)."""
    keep = [j for j, c in enumerate(tables.columns) if c != LABEL_COLUMN]
    return keep[0::2], keep[1::2]


def _targets(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x[rng.choice(len(x), min(n, len(x)), replace=False)]


def linkability(
    tables: AttackTables,
    *,
    columns: tuple[list[int], list[int]] | None = None,
    n_attacks: int = N_ATTACKS,
    n_neighbors: int = 1,
    seed: int = 0,
) -> MetricResult:
    """Linkability: an attacker holds two datasets about the same patients with different
    columns; a patient is linked when the same synthetic record is among the ``n_neighbors``
    nearest of both halves of their record."""
    a, b = columns or default_link_columns(tables)
    if not a or not b:
        raise ConfigError("linkability needs two non-empty groups of columns")
    rng = np.random.default_rng(seed)
    members = _members_like_control(tables, rng)
    syn, cat = tables.synth, tables.categorical

    def links(targets: np.ndarray) -> int:
        near_a = gower_nearest(targets[:, a], syn[:, a], cat[a], n_neighbors)
        near_b = gower_nearest(targets[:, b], syn[:, b], cat[b], n_neighbors)
        return int(sum(bool(set(ra) & set(rb)) for ra, rb in zip(near_a, near_b, strict=True)))

    main_targets = _targets(members, n_attacks, rng)
    control_targets = _targets(tables.holdout, n_attacks, rng)
    k = min(n_neighbors, len(syn))
    random_links = sum(
        bool(
            set(rng.choice(len(syn), k, replace=False))
            & set(rng.choice(len(syn), k, replace=False))
        )
        for _ in range(len(main_targets))
    )
    counts = {
        "n_main": len(main_targets),
        "success_main": links(main_targets),
        "n_control": len(control_targets),
        "success_control": links(control_targets),
        "n_baseline": len(main_targets),
        "success_baseline": int(random_links),
    }
    return _result(
        MetricId.LINKABILITY,
        "Anonymeter linkability risk",
        counts,
        {
            "n_neighbors": n_neighbors,
            "columns_a": [tables.columns[j] for j in a],
            "columns_b": [tables.columns[j] for j in b],
        },
    )


# --- attribute inference ---------------------------------------------------------------------


def default_secret(tables: AttackTables) -> int | None:
    """The outcome label when there is one, else the categorical column closest to balanced."""
    if LABEL_COLUMN in tables.columns:
        return tables.columns.index(LABEL_COLUMN)
    best, score = None, 0.0
    for j in np.flatnonzero(tables.categorical):
        _, counts = np.unique(tables.train[:, j], return_counts=True)
        share = counts / counts.sum()
        entropy = float(-(share * np.log(share)).sum())
        if entropy > score:
            best, score = int(j), entropy
    return best


def _correct(guess: np.ndarray, truth: np.ndarray, categorical: bool) -> np.ndarray:
    both_missing = np.isnan(guess) & np.isnan(truth)
    if categorical:
        return both_missing | (guess == truth)
    with np.errstate(invalid="ignore"):
        return both_missing | (np.abs(guess - truth) <= 0.05 * np.abs(truth))


def inference(
    tables: AttackTables,
    *,
    secret: int | None = None,
    known: list[int] | None = None,
    n_attacks: int = N_ATTACKS,
    seed: int = 0,
) -> MetricResult:
    """Attribute inference: an attacker who knows a patient's other columns takes the secret
    column of the nearest synthetic record as the guess."""
    secret = default_secret(tables) if secret is None else secret
    if secret is None:
        raise ConfigError("no column to infer: the table has no label or categorical column")
    known = known or [j for j in range(len(tables.columns)) if j != secret]
    rng = np.random.default_rng(seed)
    members = _members_like_control(tables, rng)
    syn, cat = tables.synth, tables.categorical[secret]

    def hits(targets: np.ndarray) -> int:
        near = gower_nearest(targets[:, known], syn[:, known], tables.categorical[known])[:, 0]
        return int(_correct(syn[near, secret], targets[:, secret], cat).sum())

    main_targets = _targets(members, n_attacks, rng)
    control_targets = _targets(tables.holdout, n_attacks, rng)
    guesses = syn[rng.integers(0, len(syn), len(main_targets)), secret]
    counts = {
        "n_main": len(main_targets),
        "success_main": hits(main_targets),
        "n_control": len(control_targets),
        "success_control": hits(control_targets),
        "n_baseline": len(main_targets),
        "success_baseline": int(_correct(guesses, main_targets[:, secret], cat).sum()),
    }
    return _result(
        MetricId.INFERENCE,
        f"Anonymeter attribute-inference risk ({tables.columns[secret]})",
        counts,
        {"secret": tables.columns[secret], "known_columns": len(known)},
    )
