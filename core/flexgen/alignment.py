"""Missing-modality alignment of FLEXGEN-EHR: maps between the temporal and static latent spaces
that impute the latent of a record's missing part from the part it has.

Methods (``AlignmentConfig.method``):

``gw`` (the paper)
    1. Structure matrices: cosine similarities within each latent cloud. With a binary label
       (y in {-1, +1}), the paper's loss 1/2 (y_i y_k C^T_ik - y_j y_l C^S_jl)^2 is the square
       loss between the *label-signed* matrices y_i y_k C_ik, so POT's square-loss solver applies.
    2. ``Gamma`` (n_T x n_S): POT's entropic GW (projected gradient, Sinkhorn projections);
       ``epsilon = 0`` solves the unregularised problem by conditional gradient instead.
    3. Eq. 7, min_A ||Z^S Gamma - A Z^T||_F^2, with Gamma's rows rescaled to sum to one (so
       Z^S Gamma is each temporal record's barycentric static latent) and an affine term; solved
       as a ridge regression.
``gw_pairs``
    The same, anchored on the records that have both parts: fused GW whose feature cost is 0 on a
    known pair and 1 elsewhere (only rows and columns of paired records feel it), started from a
    plan with ``pair_mass`` of its mass on the known pairs.
``fgw``
    Fused GW (POT's ``fused_gromov_wasserstein``) with a feature cost from what both parts share:
    label disagreement plus the standardised difference of each variable present in both (e.g.
    PhysioNet's Weight, a static descriptor and a series), weighted against the structure by
    ``alpha``.
``ridge`` / ``mlp``
    A map fitted on the records with both parts only (no transport): ridge regression with its
    penalty chosen by leave-one-out (scikit-learn's RidgeCV), or a small MLP with early stopping.
    The signed label is an input beside the latent.

Choices where the paper is ambiguous (also in the model card):
- Imputing the *temporal* latent from the static one: the paper writes ``Gamma^{-1}``, but Gamma
  is rectangular (n_T x n_S) and not invertible in general. We use the transposed coupling,
  normalised the same way, and fit a second least-squares map B: z_T ~ B z_S.
- Records with both modalities are a known partial correspondence. In ``gw`` they seed the
  solver's initial plan G0 (half the mass on the known pairs); the GW objective is unchanged.
- Records with an unknown label (-1) are left out of a label-signed solve; labels with more than
  two classes fall back to the unsigned loss.
- Large cohorts: the transport solves use a random subsample of at most ``subsample`` records
  per side (cost grows as n^3 per iteration); the maps are then applied to every record.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import ot

from core.errors import ConfigError

log = logging.getLogger(__name__)

PAPER_METHOD = "gw"
METHODS = {
    "gw": "Entropic Gromov-Wasserstein, label-signed (the paper)",
    "gw_pairs": "Gromov-Wasserstein anchored on the known pairs",
    "fgw": "Fused Gromov-Wasserstein on shared information",
    "ridge": "Ridge map fitted on records with both parts",
    "mlp": "Small MLP fitted on records with both parts",
}
TRANSPORT_METHODS = ("gw", "gw_pairs", "fgw")


@dataclass(frozen=True)
class AlignmentConfig:
    method: str = "ridge"
    subsample: int = 1000
    epsilon: float = 5e-3  # entropic regularisation of gw / gw_pairs; 0 = unregularised
    max_iter: int = 100
    tol: float = 1e-7
    ridge: float = 1e-2  # penalty of eq. 7's barycentric map
    label_signed: bool = True
    seed_with_pairs: bool = True
    pair_mass: float = 0.9  # share of G0 on the known pairs (gw_pairs)
    alpha: float = 0.5  # structure vs feature cost in the fused solves (POT's alpha)
    mlp_hidden: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"Unknown alignment method '{self.method}'; expected one of {tuple(METHODS)}."
            )
        if self.subsample < 4:
            raise ConfigError("The alignment subsample needs at least 4 records per side.")
        if self.epsilon < 0:
            raise ConfigError("The entropic regularisation epsilon must be 0 or positive.")
        if not 0.0 <= self.alpha <= 1.0 or not 0.0 < self.pair_mass < 1.0:
            raise ConfigError("alpha must be in [0, 1] and the pair mass in (0, 1).")


LatentMap = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


@dataclass(frozen=True, eq=False)
class Alignment:
    """Maps between latent spaces: z_S ~ to_static(z_T, signs), z_T ~ to_temporal(z_S, signs)."""

    to_static: LatentMap
    to_temporal: LatentMap
    method: str
    n_temporal: int
    n_static: int
    n_pairs: int
    seconds: float
    gw_objective: float | None
    label_signed: bool
    pair_accuracy: float | None  # share of known pairs whose largest coupling is their partner
    pair_chance: float | None
    signs: Callable[[np.ndarray | None], np.ndarray | None]

    def impute_static(self, z_t: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        return self.to_static(z_t, self.signs(labels))

    def impute_temporal(self, z_s: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        return self.to_temporal(z_s, self.signs(labels))

    def summary(self) -> dict:
        return {
            "method": self.method,
            "records_temporal": self.n_temporal,
            "records_static": self.n_static,
            "known_pairs": self.n_pairs,
            "solver_seconds": round(self.seconds, 3),
            "gw_objective": self.gw_objective,
            "label_signed": self.label_signed,
            "known_pair_top1_accuracy": self.pair_accuracy,
            "known_pair_chance": self.pair_chance,
        }


def _affine(z: np.ndarray) -> np.ndarray:
    return np.concatenate([z, np.ones((len(z), 1), dtype=z.dtype)], axis=1)


def _with_signs(z: np.ndarray, signs: np.ndarray | None) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return z if signs is None else np.concatenate([z, signs[:, None]], axis=1)


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
    feature_cost: np.ndarray | None = None,
    alpha: float = 0.5,
    g0: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-7,
) -> tuple[np.ndarray, float]:
    """GW plan (n_T x n_S, uniform marginals) and its objective: entropic for ``epsilon > 0``,
    conditional gradient otherwise; fused with ``feature_cost`` when one is given."""
    n_t, n_s = len(c_temporal), len(c_static)
    p, q = np.full(n_t, 1.0 / n_t), np.full(n_s, 1.0 / n_s)
    common = {"loss_fun": "square_loss", "symmetric": True, "G0": g0, "log": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT warns per inner Sinkhorn that hits its limit
        if feature_cost is None and epsilon > 0:
            plan, info = ot.gromov.entropic_gromov_wasserstein(
                c_temporal, c_static, p, q, epsilon=epsilon, max_iter=max_iter, tol=tol, **common
            )
        elif feature_cost is None:
            plan, info = ot.gromov.gromov_wasserstein(
                c_temporal, c_static, p, q, max_iter=max_iter, tol_rel=tol, **common
            )
        elif epsilon > 0:
            plan, info = ot.gromov.entropic_fused_gromov_wasserstein(
                feature_cost, c_temporal, c_static, p, q, epsilon=epsilon, alpha=alpha,
                max_iter=max_iter, tol=tol, **common,
            )  # fmt: skip
        else:
            plan, info = ot.gromov.fused_gromov_wasserstein(
                feature_cost, c_temporal, c_static, p, q, alpha=alpha, max_iter=max_iter,
                tol_rel=tol, **common,
            )  # fmt: skip
    plan = np.asarray(plan)
    if not np.isfinite(plan).all() or plan.sum() <= 0:
        raise ConfigError(
            f"the Gromov-Wasserstein solver diverged at epsilon {epsilon:g}; use a larger epsilon"
        )
    objective = info.get("gw_dist", info.get("fgw_dist", np.nan))
    return plan, float(objective)


def _with_uniform_marginals(plan: np.ndarray, iters: int = 200) -> np.ndarray:
    """Sinkhorn-Knopp scaling of a positive matrix to uniform row and column sums, so a seeded
    start is a feasible plan (POT's exact solvers check it)."""
    n, m = plan.shape
    for _ in range(iters):
        plan = plan / (n * plan.sum(axis=1, keepdims=True))
        plan = plan / (m * plan.sum(axis=0, keepdims=True))
    return plan


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


def _affine_map(matrix: np.ndarray) -> LatentMap:
    matrix = matrix.astype(np.float32)
    return lambda z, signs: _affine(np.asarray(z, dtype=np.float32)) @ matrix


def _supervised_map(
    x: np.ndarray, y: np.ndarray, method: str, config: AlignmentConfig
) -> LatentMap:
    """Ridge (penalty by leave-one-out) or a small MLP from ``x`` to ``y`` on the known pairs."""
    from sklearn.linear_model import RidgeCV
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if method == "ridge":
        model = RidgeCV(alphas=np.logspace(-3, 3, 13))
    else:
        model = MLPRegressor(
            hidden_layer_sizes=(config.mlp_hidden, config.mlp_hidden),
            alpha=1e-3,
            learning_rate_init=1e-3,
            max_iter=500,
            early_stopping=True,
            n_iter_no_change=20,
            random_state=config.seed,
        )
    fitted = make_pipeline(StandardScaler(), model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's convergence note on tiny test problems
        fitted.fit(x, y)
    return lambda z, signs: fitted.predict(_with_signs(z, signs)).astype(np.float32)


def shared_feature_cost(
    shared_t: np.ndarray | None,
    shared_s: np.ndarray | None,
    labels_t: np.ndarray | None,
    labels_s: np.ndarray | None,
) -> np.ndarray:
    """Mean over the shared information of its disagreement: label (0/1) and each variable's
    standardised absolute difference (capped at 3 sd, scaled to [0, 1]); information missing on
    either side (label -1, NaN) adds nothing to that pair."""
    terms, counts = [], []
    if labels_t is not None and labels_s is not None:
        known = (labels_t[:, None] >= 0) & (labels_s[None, :] >= 0)
        terms.append(np.where(known, labels_t[:, None] != labels_s[None, :], 0.0))
        counts.append(known.astype(np.float64))
    if shared_t is not None and shared_s is not None:
        scale = np.nanstd(np.concatenate([shared_t, shared_s]), axis=0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        for j in range(shared_t.shape[1]):
            diff = np.abs(shared_t[:, j, None] - shared_s[None, :, j]) / scale[j]
            seen = np.isfinite(diff)
            terms.append(np.where(seen, np.minimum(diff, 3.0) / 3.0, 0.0))
            counts.append(seen.astype(np.float64))
    if not terms:
        raise ConfigError(
            "fused GW needs information both parts share: a label or a variable in both"
        )
    return sum(terms) / np.maximum(sum(counts), 1.0)


def align(
    z_temporal: np.ndarray,
    z_static: np.ndarray,
    has_temporal: np.ndarray,
    has_static: np.ndarray,
    labels: np.ndarray | None,
    config: AlignmentConfig = AlignmentConfig(),
    *,
    shared_temporal: np.ndarray | None = None,
    shared_static: np.ndarray | None = None,
) -> Alignment:
    """Align the latent spaces of records with a temporal part and records with a static part.

    ``z_temporal``/``z_static`` are ``[N, d]`` for all N records (rows of records lacking that
    modality are ignored). ``shared_temporal``/``shared_static`` (``[N, k]``, NaN where unknown)
    hold the variables both parts measure, read from each part; only ``fgw`` uses them.
    """
    # Its own stream: a cohort whose missing parts were drawn with the same seed must not get
    # a subsample that coincides with them.
    rng = np.random.default_rng((config.seed, 0x5EED))
    n_classes = 0 if labels is None else len(np.unique(labels[labels >= 0]))
    signed = config.label_signed and labels is not None and n_classes == 2
    positive = np.max(labels[labels >= 0]) if signed else None

    def signs_of(lab: np.ndarray | None) -> np.ndarray | None:
        # Class 1 is the positive sign whatever the label coding; unknown labels are 0.
        if not signed or lab is None:
            return None
        return np.where(lab < 0, 0.0, np.where(lab == positive, 1.0, -1.0))

    all_signs = signs_of(labels)
    both = np.flatnonzero(has_temporal & has_static)
    start = time.perf_counter()
    if config.method in ("ridge", "mlp"):
        if len(both) < 4:
            raise ConfigError(
                f"a supervised map needs at least 4 records with both parts (found {len(both)})"
            )
        s_both = None if all_signs is None else all_signs[both]
        to_static = _supervised_map(
            _with_signs(z_temporal[both], s_both), z_static[both], config.method, config
        )
        to_temporal = _supervised_map(
            _with_signs(z_static[both], s_both), z_temporal[both], config.method, config
        )
        seconds = time.perf_counter() - start
        log.info("%s map on %d known pairs in %.2fs", config.method, len(both), seconds)
        n_t, n_s = int(has_temporal.sum()), int(has_static.sum())
        return Alignment(
            to_static, to_temporal, config.method, n_t, n_s, len(both), seconds, None,
            signed, None, None, signs_of,
        )  # fmt: skip

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
    sign_t = None if all_signs is None else all_signs[t_rows]
    sign_s = None if all_signs is None else all_signs[s_rows]
    c_t = cosine_structure(z_temporal[t_rows], sign_t)
    c_s = cosine_structure(z_static[s_rows], sign_s)
    pos_s = {r: j for j, r in enumerate(s_rows)}
    pairs = np.array([(i, pos_s[r]) for i, r in enumerate(t_rows) if r in pos_s], dtype=np.int64)
    pairs = pairs.reshape(-1, 2)
    g0 = feature_cost = None
    mass = config.pair_mass if config.method == "gw_pairs" else 0.5
    if config.seed_with_pairs and len(pairs):
        g0 = np.full((len(t_rows), len(s_rows)), (1 - mass) / (len(t_rows) * len(s_rows)))
        g0[pairs[:, 0], pairs[:, 1]] += mass / len(pairs)
        g0 = _with_uniform_marginals(g0)
    if config.method == "gw_pairs":
        if not len(pairs):
            raise ConfigError("anchoring on known pairs needs records with both parts")
        feature_cost = np.ones((len(t_rows), len(s_rows)))
        feature_cost[pairs[:, 0], pairs[:, 1]] = 0.0
    elif config.method == "fgw":
        feature_cost = shared_feature_cost(
            None if shared_temporal is None else shared_temporal[t_rows],
            None if shared_static is None else shared_static[s_rows],
            None if labels is None else labels[t_rows],
            None if labels is None else labels[s_rows],
        )
    # fgw is POT's exact solver, as the issue names it; gw / gw_pairs keep the entropic one.
    epsilon = 0.0 if config.method == "fgw" else config.epsilon
    plan, objective = gw_coupling(
        c_t, c_s, epsilon, feature_cost=feature_cost, alpha=config.alpha, g0=g0,
        max_iter=config.max_iter, tol=config.tol,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    zt, zs = z_temporal[t_rows], z_static[s_rows]
    to_static = barycentric_map(zt, zs, plan, config.ridge)
    to_temporal = barycentric_map(zs, zt, plan.T, config.ridge)
    accuracy = chance = None
    if len(pairs):
        accuracy = float(np.mean(plan[pairs[:, 0]].argmax(axis=1) == pairs[:, 1]))
        chance = 1.0 / len(s_rows)
    log.info(
        "%s alignment on %d temporal x %d static records in %.2fs",
        config.method,
        len(t_rows),
        len(s_rows),
        seconds,
    )
    return Alignment(
        _affine_map(to_static), _affine_map(to_temporal), config.method, len(t_rows),
        len(s_rows), len(pairs), seconds, objective, signed, accuracy, chance, signs_of,
    )  # fmt: skip
