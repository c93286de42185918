"""alpha-precision, beta-recall and authenticity (Alaa, van Breugel, Saveliev, van der Schaar:
"How Faithful is your Synthetic Data? Sample-level Metrics for Evaluating and Auditing
Generative Models", ICML 2022), estimated on a fixed embedding.

Embedding (stated in every result): the review's ``[0, 1]`` encoding of the records (numeric
columns min-max scaled to the training range, categories one-hot, missingness indicators, codes
0/1), Euclidean distance; the centre of the real data is the real records' mean (synthcity's
"naive" variant, without the one-class network the paper trains). Both sets are cut to the same
size (at most :data:`MAX_RECORDS`, stated), since nearest-neighbour distances depend on it.

- alpha-precision curve: P_alpha = share of synthetic records inside the ball around the real
  centre that holds a share alpha of the real records. A faithful set has P_alpha = alpha.
- beta-recall curve: R_beta = share of real records that are covered (a synthetic record lies
  closer to them than their nearest other real record) by a synthetic record in the synthetic
  beta-support (the matched synthetic records' ball around the synthetic centre holding a share
  beta of them).
- Integrated scores: 1 - 2 x mean |curve - diagonal| over alpha (beta) in [0, 1]; 1 is ideal.
- authenticity: share of synthetic records farther from their nearest real record than that real
  record is from its own nearest real neighbour (a copy scores 0; an independent draw from the
  same distribution about what real unseen records score).
"""

from __future__ import annotations

import numpy as np
import torch

from core.errors import ConfigError
from core.metrics.base import MetricResult
from core.metrics.ids import MetricId

MAX_RECORDS = 4000
LEVELS = np.linspace(0.0, 1.0, 30)  # the alpha / beta grid (30 steps, as the paper's code)
EMBEDDING = "review [0, 1] encoding, Euclidean, real mean as centre"


def _nearest(a: torch.Tensor, b: torch.Tensor, k: int, block: int = 2048):
    """Distances and indices of the ``k`` nearest rows of ``b`` for each row of ``a``."""
    dists, idx = [], []
    b2 = (b * b).sum(1)
    for i in range(0, len(a), block):
        ai = a[i : i + block]
        d = ((ai * ai).sum(1)[:, None] + b2[None, :] - 2.0 * ai @ b.T).clamp_min_(0.0)
        v, j = torch.topk(d, k, dim=1, largest=False)
        dists.append(v.sqrt())
        idx.append(j)
    return torch.cat(dists).numpy(), torch.cat(idx).numpy()


def curves(real: np.ndarray, synth: np.ndarray) -> dict:
    """The three estimates for two equally sized sets in one embedding (arrays in, dict out)."""
    r = torch.as_tensor(np.asarray(real, dtype=np.float64))
    s = torch.as_tensor(np.asarray(synth, dtype=np.float64))
    centre = r.mean(0)
    real_radius = (r - centre).norm(dim=1).numpy()
    synth_to_centre = (s - centre).norm(dim=1).numpy()
    radii = np.quantile(real_radius, LEVELS)
    precision = np.array([np.mean(synth_to_centre <= rad) for rad in radii])

    rr_d, _ = _nearest(r, r, 2)
    real_nn = rr_d[:, 1]  # nearest other real record (column 0 is the record itself)
    rs_d, rs_j = _nearest(r, s, 1)
    real_to_synth, matched = rs_d[:, 0], rs_j[:, 0]
    covered = real_to_synth <= real_nn
    synth_centre = s.mean(0)
    matched_radius = (s[matched] - synth_centre).norm(dim=1).numpy()
    beta_radii = np.quantile(matched_radius, LEVELS)
    recall = np.array([np.mean(covered & (matched_radius <= rad)) for rad in beta_radii])

    sr_d, sr_j = _nearest(s, r, 1)
    authentic = sr_d[:, 0] > real_nn[sr_j[:, 0]]

    def integrated(curve: np.ndarray) -> float:
        return float(1.0 - 2.0 * np.mean(np.abs(curve - LEVELS)))

    return {
        MetricId.ALPHA_PRECISION: integrated(precision),
        MetricId.BETA_RECALL: integrated(recall),
        MetricId.AUTHENTICITY: float(np.mean(authentic)),
        "precision_curve": precision,
        "recall_curve": recall,
    }


def _equal_sizes(a: np.ndarray, b: np.ndarray, limit: int, seed: int):
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b), limit)

    def pick(x: np.ndarray) -> np.ndarray:
        return x if len(x) == n else x[np.sort(rng.choice(len(x), n, replace=False))]

    return pick(a), pick(b)


def precision_recall_authenticity(
    real_train: np.ndarray,
    synth: np.ndarray,
    real_holdout: np.ndarray | None = None,
    *,
    max_records: int = MAX_RECORDS,
    seed: int = 0,
) -> list[MetricResult]:
    """alpha-precision, beta-recall and authenticity of ``synth`` against the real training
    records; with ``real_holdout``, the same of holdout vs training records is each result's
    ``ideal`` (what real unseen records score at their size)."""
    # float32 storage noise removed as for detection (a decoded 1.9 vs a stored 1.8999999762)
    real_train, synth = (
        np.round(np.asarray(real_train, np.float64), 6),
        np.round(np.asarray(synth, np.float64), 6),
    )
    if real_train.ndim != 2 or synth.ndim != 2 or real_train.shape[1] != synth.shape[1]:
        raise ConfigError(
            f"real {real_train.shape} and synthetic {synth.shape} must be 2-D with equal widths"
        )
    if min(len(real_train), len(synth)) < 3:
        raise ConfigError("alpha-precision needs at least three real and three synthetic records")
    a, b = _equal_sizes(real_train, synth, max_records, seed)
    ours = curves(a, b)
    ref = None
    if real_holdout is not None and len(real_holdout) >= 3:
        ra, rb = _equal_sizes(
            real_train, np.round(np.asarray(real_holdout, np.float64), 6), max_records, seed
        )
        ref = curves(ra, rb)
    common = {
        "embedding": EMBEDDING,
        "records_per_set": len(a),
        "reference_records_per_set": 0 if ref is None else int(min(len(real_holdout), len(a))),
        "levels": LEVELS.tolist(),
    }
    texts = {
        MetricId.ALPHA_PRECISION: (
            "alpha-precision (synthetic records inside the real support)",
            1.0,
        ),
        MetricId.BETA_RECALL: ("beta-recall (real records covered by synthetic ones)", 1.0),
        MetricId.AUTHENTICITY: (
            "Authenticity (synthetic records not closer than a real neighbour)",
            0.5,
        ),
    }
    out = []
    for key, (name, default_ideal) in texts.items():
        details = dict(common)
        details["real_vs_real"] = float("nan") if ref is None else ref[key]
        if key != MetricId.AUTHENTICITY:
            curve = "precision_curve" if key == MetricId.ALPHA_PRECISION else "recall_curve"
            details["curve"] = ours[curve].tolist()
            if ref is not None:
                details["real_vs_real_curve"] = ref[curve].tolist()
        out.append(
            MetricResult(
                id=key,
                name=name,
                category="fidelity",
                value=ours[key],
                higher_is_better=True,
                ideal=default_ideal if ref is None else ref[key],
                lower_bound=0.0,
                upper_bound=1.0,
                details=details,
            )
        )
    return out
