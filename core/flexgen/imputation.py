"""Missing-modality imputation measured directly: take held-out records that have both parts, hide
one, impute it from the other with each alignment method, and score against the truth.

Per direction (static from series, series from static) and method:
- latent R² (pooled over dimensions, around the held-out mean; 0 = imputing the mean) and its
  relative error ``sqrt(1 - R²)``;
- value R²: the imputed latent decoded, against the record's own [0, 1] inputs; per static
  dimension, and per series variable on each stay's mean over its observed hours; the mean over
  variables is reported, the per-variable values are kept;
- pair recovery: the share of records whose imputed latent is nearer their own true latent than
  any other held-out record's (top-1; chance 1/n).

Baselines beside the alignment methods: ``label_mean`` (the training latents' mean per label: what
an alignment that carries no pairing information reduces to), ``knn`` (the data-space imputation of
the kNN variant, from the k nearest complete training records), and ``vae_ceiling`` (the true
latent decoded: the best any latent imputation can reach through these autoencoders).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.data.cohort import Cohort
from core.errors import ConfigError
from core.flexgen.alignment import AlignmentConfig, align
from core.flexgen.encoding import modality_presence, shared_measurements
from core.flexgen.missing import knn_impute
from core.flexgen.train import Autoencoders, posterior_means

BASELINES = ("label_mean", "knn", "vae_ceiling")
DIRECTIONS = ("static", "temporal")  # the part that is hidden and imputed


@dataclass(frozen=True, eq=False)
class _Truth:
    x_s: np.ndarray
    x_t: np.ndarray
    z_s: np.ndarray
    z_t: np.ndarray
    labels: np.ndarray | None


def _r2(pred: np.ndarray, truth: np.ndarray) -> float:
    sst = float(((truth - truth.mean(axis=0)) ** 2).sum())
    return 1.0 - float(((pred - truth) ** 2).sum()) / max(sst, 1e-12)


def r2_per_column(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """R² of each column; NaN for columns that do not vary in ``truth``."""
    sst = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    sse = ((pred - truth) ** 2).sum(axis=0)
    return np.where(sst > 1e-12, 1.0 - sse / np.maximum(sst, 1e-12), np.nan)


def pair_recovery(pred: np.ndarray, truth: np.ndarray) -> float:
    """Share of rows of ``pred`` whose nearest row of ``truth`` (Euclidean) is their own."""
    d = (pred**2).sum(1)[:, None] - 2 * pred @ truth.T + (truth**2).sum(1)[None, :]
    return float(np.mean(d.argmin(axis=1) == np.arange(len(pred))))


def _series_means(x_t: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per stay and variable: mean of the value channel over ``observed`` hours (NaN if none)."""
    d = x_t.shape[-1] // 2
    seen = observed.sum(axis=1)
    total = (x_t[..., :d] * observed).sum(axis=1)  # observed may be a fractional weight
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, total / seen, np.nan)


@torch.no_grad()
def _decode(ae: Autoencoders, z: np.ndarray, part: str) -> np.ndarray:
    vae = ae.static_vae if part == "static" else ae.temporal_vae
    device = next(vae.parameters()).device
    out = torch.sigmoid(vae.decode(torch.from_numpy(z.astype(np.float32)).to(device)))
    return out.cpu().numpy()


def _encode(ae: Autoencoders, x: np.ndarray, part: str) -> np.ndarray:
    vae = ae.static_vae if part == "static" else ae.temporal_vae
    device = next(vae.parameters()).device
    return posterior_means(vae, torch.from_numpy(x.astype(np.float32)).to(device))


def _value_scores(
    ae: Autoencoders, truth: _Truth, part: str, x_hat: np.ndarray, data_space: bool
) -> tuple[float, dict[str, float]]:
    """Mean and per-variable value R². A decoded series predicts every hour and is averaged over
    the hours the truth observed; a data-space (kNN) series over the hours its donors observed,
    weighted by its fractional mask (the population mean where no donor observed the variable)."""
    if part == "static":
        per = r2_per_column(x_hat, truth.x_s)
        names = ae.encoding.static.dim_names
    else:
        d = truth.x_t.shape[-1] // 2
        observed = truth.x_t[..., d:] > 0.5
        t_true = _series_means(truth.x_t, observed)
        t_hat = _series_means(x_hat, x_hat[..., d:] if data_space else observed)
        t_hat = np.where(np.isfinite(t_hat), t_hat, np.nanmean(t_true, axis=0))
        per = np.array(
            [
                r2_per_column(t_hat[ok, j : j + 1], t_true[ok, j : j + 1])[0]
                if (ok := np.isfinite(t_true[:, j])).sum() > 2
                else np.nan
                for j in range(t_true.shape[1])
            ]
        )
        names = list(ae.encoding.temporal.variables)
    per_variable = {n: float(v) for n, v in zip(names, per, strict=True) if np.isfinite(v)}
    return float(np.nanmean(per)), per_variable


def _label_means(
    z: np.ndarray, has: np.ndarray, labels: np.ndarray | None
) -> dict[int, np.ndarray]:
    rows = np.flatnonzero(has)
    means = {-1: z[rows].mean(axis=0)}
    if labels is not None:
        for c in np.unique(labels[rows][labels[rows] >= 0]):
            means[int(c)] = z[rows[labels[rows] == c]].mean(axis=0)
    return means


def evaluate_imputation(
    ae: Autoencoders,
    train: Cohort,
    holdout: Cohort,
    methods: dict[str, AlignmentConfig],
    *,
    knn_k: int = 5,
    seed: int = 0,
) -> tuple[list[dict], list[dict]]:
    """Rows of scores (one per method and direction) and of per-variable value R².

    ``ae`` is stage 1 of the flexgen variant fitted on ``train`` (whose hidden parts stay hidden);
    ``holdout`` is never seen by it. Every method is fitted on ``train``'s latents only.
    """
    has_s_ho, has_t_ho = modality_presence(holdout)
    both = np.flatnonzero(has_s_ho & has_t_ho)
    complete = holdout.subset(both)
    rng = np.random.default_rng(seed)
    x_s = ae.encoding.static_inputs(complete, rng)
    x_t = ae.encoding.temporal_inputs(complete, rng)
    labels_ho = None if train.labels is None else complete.labels
    truth = _Truth(x_s, x_t, _encode(ae, x_s, "static"), _encode(ae, x_t, "temporal"), labels_ho)
    labels_tr = train.labels
    shared_t, shared_s = shared_measurements(train)

    imputed: dict[str, dict[str, np.ndarray]] = {}  # method -> part -> latent
    decoded: dict[str, dict[str, np.ndarray]] = {}  # method -> part -> [0, 1] inputs
    extra: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for name, cfg in methods.items():
        try:
            a = align(
                ae.z_t, ae.z_s, ae.has_t, ae.has_s, labels_tr, cfg,
                shared_temporal=shared_t, shared_static=shared_s,
            )  # fmt: skip
        except ConfigError as exc:  # e.g. a too small epsilon: reported, not fatal
            failed[name] = str(exc)
            continue
        imputed[name] = {
            "static": a.impute_static(truth.z_t, labels_ho),
            "temporal": a.impute_temporal(truth.z_s, labels_ho),
        }
        extra[name] = {
            "train_pair_top1": a.pair_accuracy,
            "solver_s": round(a.seconds, 2),
        }
    lab = labels_ho if labels_ho is not None else np.full(len(both), -1)
    for part, z_all, has in (("static", ae.z_s, ae.has_s), ("temporal", ae.z_t, ae.has_t)):
        means = _label_means(z_all, has, labels_tr)
        imputed.setdefault("label_mean", {})[part] = np.stack(
            [means.get(int(c), means[-1]) for c in lab]
        )
        imputed.setdefault("vae_ceiling", {})[part] = truth.z_s if part == "static" else truth.z_t
    # kNN in data space: training records as donors, the held-out ones with one part removed.
    x_s_tr, x_t_tr, has_s_tr, has_t_tr = ae.x_s, ae.x_t, ae.has_s, ae.has_t
    n = len(both)
    for part in DIRECTIONS:
        drop_s, drop_t = part == "static", part == "temporal"
        xs, xt = knn_impute(
            np.concatenate([x_s_tr, x_s]),
            np.concatenate([x_t_tr, x_t]),
            np.concatenate([has_s_tr, np.full(n, not drop_s)]),
            np.concatenate([has_t_tr, np.full(n, not drop_t)]),
            knn_k,
        )
        x_hat = xs[-n:] if drop_s else xt[-n:]
        decoded.setdefault("knn", {})[part] = x_hat
        imputed.setdefault("knn", {})[part] = _encode(ae, x_hat, part)

    rows, per_variable = [], []
    for name, reason in failed.items():
        rows += [
            {"method": name, "imputed": part, "records": n, "failed": reason} for part in DIRECTIONS
        ]
    for name, parts in imputed.items():
        for part in DIRECTIONS:
            z_hat, z_true = parts[part], (truth.z_s if part == "static" else truth.z_t)
            x_hat = decoded.get(name, {}).get(part)
            data_space = x_hat is not None
            if not data_space:
                x_hat = _decode(ae, z_hat, part)
            value_r2, per = _value_scores(ae, truth, part, x_hat, data_space)
            r2 = _r2(z_hat, z_true)
            rows.append(
                {
                    "method": name,
                    "imputed": part,
                    "records": n,
                    "latent_r2": r2,
                    "latent_relative_error": float(np.sqrt(max(1.0 - r2, 0.0))),
                    "value_r2": value_r2,
                    "pair_top1": None if name == "vae_ceiling" else pair_recovery(z_hat, z_true),
                    "pair_chance": 1.0 / n,
                    **extra.get(name, {}),
                }
            )
            per_variable += [
                {"method": name, "imputed": part, "variable": k, "value_r2": v}
                for k, v in per.items()
            ]
    return rows, per_variable
