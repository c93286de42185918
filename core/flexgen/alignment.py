"""Missing-modality alignment of FLEXGEN-EHR: entropic Gromov-Wasserstein between the temporal and
static latent spaces, then least-squares maps between them.

1. Structure matrices: cosine similarities within each latent cloud. With a binary label
   (y in {-1, +1}), the paper's loss 1/2 (y_i y_k C^T_ik - y_j y_l C^S_jl)^2 is the square loss
   between the *label-signed* matrices y_i y_k C_ik, so POT's square-loss solver applies as is.
2. ``Gamma`` (n_T x n_S): POT's entropic GW (projected gradient, Sinkhorn projections, log domain).
3. Eq. 7, min_A ||Z^S Gamma - A Z^T||_F^2, with Gamma's columns rescaled to sum to one (so
   Z^S Gamma is each temporal record's barycentric static latent) and an affine term; solved as a
   ridge regression.

Choices where the paper is ambiguous (also in the model card):
- Imputing the *temporal* latent from the static one: the paper writes ``Gamma^{-1}``, but Gamma
  is rectangular (n_T x n_S) and not invertible in general. We use the transposed coupling,
  normalised the same way (each static record's barycentric temporal latent), and fit a second
  least-squares map B: z_T ~ B z_S. This is the coupling read from the other side.
- Records with both modalities are a known partial correspondence. They seed the solver's initial
  plan G0 (half the mass on the known pairs); the GW objective is unchanged.
- Records with an unknown label (-1) are left out of the solve when the loss is label-signed;
  labels with more than two classes fall back to the unsigned loss.
- Large cohorts: the solve uses a random subsample of at most ``subsample`` records per side
  (default 1,000; cost grows as n^3 per iteration); the maps are then applied to every record.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import ot

from core.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignmentConfig:
    subsample: int = 1000
    epsilon: float = 5e-3
    max_iter: int = 100
    tol: float = 1e-7
    ridge: float = 1e-2
    label_signed: bool = True
    seed_with_pairs: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.subsample < 4:
            raise ConfigError("The alignment subsample needs at least 4 records per side.")
        if self.epsilon <= 0:
            raise ConfigError("The entropic regularisation epsilon must be positive.")


@dataclass(frozen=True, eq=False)
class Alignment:
    """Affine maps between latent spaces: z_S ~ [z_T, 1] @ temporal_to_static, and back."""

    temporal_to_static: np.ndarray  # [d_T + 1, d_S]
    static_to_temporal: np.ndarray  # [d_S + 1, d_T]
    n_temporal: int
    n_static: int
    seconds: float
    gw_objective: float
    label_signed: bool
    pair_accuracy: float | None  # share of known pairs whose largest coupling is their partner
    pair_chance: float | None

    def impute_static(self, z_t: np.ndarray) -> np.ndarray:
        return _affine(z_t) @ self.temporal_to_static

    def impute_temporal(self, z_s: np.ndarray) -> np.ndarray:
        return _affine(z_s) @ self.static_to_temporal

    def summary(self) -> dict:
        return {
            "records_temporal": self.n_temporal,
            "records_static": self.n_static,
            "solver_seconds": round(self.seconds, 3),
            "gw_objective": self.gw_objective,
            "label_signed": self.label_signed,
            "known_pair_top1_accuracy": self.pair_accuracy,
            "known_pair_chance": self.pair_chance,
        }


def _affine(z: np.ndarray) -> np.ndarray:
    return np.concatenate([z, np.ones((len(z), 1), dtype=z.dtype)], axis=1)


def cosine_structure(z: np.ndarray, signs: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarities between rows, optionally multiplied by ``signs_i * signs_k``."""
    z = np.asarray(z, dtype=np.float64)
    unit = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    c = unit @ unit.T
    if signs is not None:
        c *= np.outer(signs, signs)
    return c


def gw_coupling(
    c_temporal: np.ndarray,
    c_static: np.ndarray,
    epsilon: float,
    *,
    g0: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-7,
) -> tuple[np.ndarray, float]:
    """Entropic GW plan (n_T x n_S, uniform marginals) and its GW objective."""
    n_t, n_s = len(c_temporal), len(c_static)
    p, q = np.full(n_t, 1.0 / n_t), np.full(n_s, 1.0 / n_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT warns per inner Sinkhorn that hits its limit
        plan, info = ot.gromov.entropic_gromov_wasserstein(
            c_temporal,
            c_static,
            p,
            q,
            loss_fun="square_loss",
            epsilon=epsilon,
            symmetric=True,
            G0=g0,
            max_iter=max_iter,
            tol=tol,
            log=True,
        )
    plan = np.asarray(plan)
    if not np.isfinite(plan).all() or plan.sum() <= 0:
        raise ConfigError(
            f"the Gromov-Wasserstein solver diverged at epsilon {epsilon:g}; use a larger epsilon"
        )
    return plan, float(info.get("gw_dist", np.nan))


def barycentric_map(
    source: np.ndarray, target: np.ndarray, plan: np.ndarray, ridge: float
) -> np.ndarray:
    """Eq. 7: affine A minimising ||[source, 1] A - plan_rows @ target||^2 + ridge ||A||^2,
    where plan_rows normalises each row of ``plan`` (n_source x n_target) to sum to one."""
    weights = plan / np.maximum(plan.sum(axis=1, keepdims=True), 1e-300)
    goal = weights @ target
    x = _affine(np.asarray(source, dtype=np.float64))
    reg = ridge * np.eye(x.shape[1])
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(x.T @ x + reg, x.T @ goal)


def align(
    z_temporal: np.ndarray,
    z_static: np.ndarray,
    has_temporal: np.ndarray,
    has_static: np.ndarray,
    labels: np.ndarray | None,
    config: AlignmentConfig = AlignmentConfig(),
) -> Alignment:
    """Align the latent spaces of records with a temporal part and records with a static part.

    ``z_temporal``/``z_static`` are ``[N, d]`` for all N records (rows of records lacking that
    modality are ignored).
    """
    rng = np.random.default_rng(config.seed)
    n_classes = 0 if labels is None else len(np.unique(labels[labels >= 0]))
    signed = config.label_signed and labels is not None and n_classes == 2
    eligible = np.ones(len(z_temporal), bool) if not signed else labels >= 0
    t_rows = np.flatnonzero(has_temporal & eligible)
    s_rows = np.flatnonzero(has_static & eligible)
    if len(t_rows) < 4 or len(s_rows) < 4:
        raise ConfigError(
            "the alignment needs at least 4 records with each modality "
            f"(temporal: {len(t_rows)}, static: {len(s_rows)})"
        )
    # One shared draw of record ids keeps known pairs on both sides of the subsample.
    pool = np.union1d(t_rows, s_rows)
    if len(t_rows) > config.subsample or len(s_rows) > config.subsample:
        keep = np.zeros(len(z_temporal), bool)
        keep[rng.permutation(pool)[: config.subsample]] = True
        t_rows, s_rows = t_rows[keep[t_rows]], s_rows[keep[s_rows]]
    signs = None
    if signed:
        # Make class 1 the positive sign whatever the label coding.
        signs = np.where(labels == np.max(labels[labels >= 0]), 1.0, -1.0)
    c_t = cosine_structure(z_temporal[t_rows], None if signs is None else signs[t_rows])
    c_s = cosine_structure(z_static[s_rows], None if signs is None else signs[s_rows])
    pos_s = {r: j for j, r in enumerate(s_rows)}
    pairs = np.array([(i, pos_s[r]) for i, r in enumerate(t_rows) if r in pos_s], dtype=np.int64)
    g0 = None
    if config.seed_with_pairs and len(pairs):
        g0 = np.full((len(t_rows), len(s_rows)), 0.5 / (len(t_rows) * len(s_rows)))
        g0[pairs[:, 0], pairs[:, 1]] += 0.5 / len(pairs)
    start = time.perf_counter()
    plan, objective = gw_coupling(
        c_t, c_s, config.epsilon, g0=g0, max_iter=config.max_iter, tol=config.tol
    )
    seconds = time.perf_counter() - start
    zt, zs = z_temporal[t_rows], z_static[s_rows]
    to_static = barycentric_map(zt, zs, plan, config.ridge)
    to_temporal = barycentric_map(zs, zt, plan.T, config.ridge)
    accuracy = chance = None
    if len(pairs):
        accuracy = float(np.mean(plan[pairs[:, 0]].argmax(axis=1) == pairs[:, 1]))
        chance = 1.0 / len(s_rows)
    log.info(
        "GW alignment on %d temporal x %d static records in %.2fs",
        len(t_rows),
        len(s_rows),
        seconds,
    )
    return Alignment(
        to_static.astype(np.float32),
        to_temporal.astype(np.float32),
        len(t_rows),
        len(s_rows),
        seconds,
        objective,
        signed,
        accuracy,
        chance,
    )
