"""DOMIAS: membership inference by the density ratio of synthetic to reference data.

van Breugel, Sun, Qian & van der Schaar, "Membership Inference Attacks against Synthetic Data
through Overfitting Detection", AISTATS 2023. A generator that memorises puts extra synthetic mass
right at its training records: more than the population has there. The attacker scores a real
record x by ``p_synth(x) / p_ref(x)``, the synthetic density over the density of reference data
from the same population that the generator never saw, so that records that are merely typical
(dense everywhere) do not look like members and rare records that the generator reproduced do.

Choices made here, on the review's encoded record vectors:

- Reference data: the holdout. Its records are also the non-members to be scored, so it is
  cross-fitted: the holdout is split at random into two halves; each half is the reference
  density that scores the other half's non-members and half of the members. No record is ever
  scored by a density that contains it, and within a fold members and non-members are scored by
  the same function, so under "the generator never saw the training patients" their scores are
  exchangeable and the AUROC is 0.5 in expectation. Members: every training record (up to
  ``max_records``, a random subsample beyond, stated in the details).
- Density estimator: a Gaussian kernel density estimate (the paper's main non-parametric choice,
  and the ``domias`` package's "kde") on the leading ``components`` principal components of the
  synthetic set, whitened. A KDE in the full 100-300 dimensions of an encoded record is not
  estimable from a few thousand records (each bandwidth either ignores all structure or turns
  every record into its own spike); the leading components carry most of the variance and are
  what the synthetic data, the attacker's own material, shows. The projection is fitted on the
  synthetic set only, never on members. Whitened coordinates have unit variance, so Scott's rule
  gives the reference density its bandwidth ``n^(-1/(d+4))`` (what ``scipy.stats.gaussian_kde``
  uses): it has to estimate a population density from a few hundred records, so it is smooth.
  The synthetic density is the one that must show *local* overfitting, so its bandwidth is
  ``SYNTHETIC_BANDWIDTH`` (0.2) times Scott's: with Scott's own bandwidth on both, a synthetic
  set that *is* the training set reached only AUROC 0.64 on the 2,000-record mixed population
  of ``benchmarks.release_gate`` (the self-kernel of a copied record drowns among its
  neighbours), 0.86 at 0.5x, 0.99 at 0.2x, with the independent draw at 0.48-0.50 throughout.
  The factor is a fixed design constant chosen on simulated known answers, never on the records
  attacked; any fixed choice leaves the scores exchangeable under "never saw the training
  patients", so the interval stays valid and only the power changes. ``bandwidth_factor=1``
  gives the package's setting (Scott on both), which ``benchmarks/domias_check.py`` compares.
  The normalising flow the paper also used needs training per set and a GPU to be practical in
  a page; the KDE needs neither.

Known limits: the attack sees only what the projection keeps, and with a small reference half
the reference density is coarse (its bandwidth grows as the holdout shrinks), which weakens the
attack on small cohorts; the AUROC interval says how much.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import KernelDensity

from core.errors import ConfigError
from core.metrics.attack_stats import attack_stats
from core.metrics.base import MetricResult
from core.metrics.ids import MetricId

COMPONENTS = 10
SYNTHETIC_BANDWIDTH = 0.2  # times Scott's rule; see the module notes
MAX_RECORDS = 20_000  # synthetic and member records scored; larger sets are subsampled (stated)


def scott_bandwidth(n: int, d: int) -> float:
    """Scott's rule for unit-variance coordinates."""
    return float(n ** (-1.0 / (d + 4)))


def log_density(fit_on: np.ndarray, query: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """Log density at ``query`` of a Gaussian KDE fitted on ``fit_on``, bandwidth ``factor``
    times Scott's."""
    kde = KernelDensity(kernel="gaussian", bandwidth=factor * scott_bandwidth(*fit_on.shape))
    return kde.fit(fit_on).score_samples(query)


def projection(synth: np.ndarray, components: int, seed: int) -> PCA:
    """Whitened principal components of the synthetic set (components with no variance dropped:
    whitening would blow them up)."""
    k = int(min(components, synth.shape[1], len(synth) - 1))
    if k < 1:
        raise ConfigError("DOMIAS needs at least two synthetic records and one dimension")
    if not float(np.var(synth, axis=0).sum()) > 0:
        raise ConfigError("the synthetic set has no variance to project on (every record equal)")
    pca = PCA(n_components=k, whiten=True, random_state=seed).fit(synth)
    var = pca.explained_variance_
    keep = int(np.sum(var > 1e-9 * max(float(var.sum()), 1e-30)))
    if keep < 1:
        raise ConfigError("the synthetic set has no variance to project on (every record equal)")
    if keep < k:
        pca = PCA(n_components=keep, whiten=True, random_state=seed).fit(synth)
    return pca


def domias_scores(
    members: np.ndarray,
    non_members: np.ndarray,
    reference: np.ndarray,
    synth: np.ndarray,
    pca: PCA,
    bandwidth_factor: float = SYNTHETIC_BANDWIDTH,
) -> tuple[np.ndarray, np.ndarray]:
    """log p_synth - log p_ref of each member and non-member, in the projection ``pca``."""
    z_s, z_r = pca.transform(synth), pca.transform(reference)
    queries = pca.transform(np.concatenate([members, non_members]))
    score = log_density(z_s, queries, bandwidth_factor) - log_density(z_r, queries)
    return score[: len(members)], score[len(members) :]


def cross_fitted_scores(
    train: np.ndarray,
    holdout: np.ndarray,
    synth: np.ndarray,
    components: int,
    bandwidth_factor: float,
    rng: np.random.Generator,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, PCA, int]:
    """Every training and holdout record's score, the holdout halves taking turns as the
    reference density (no record is scored by a density that contains it); the projection and
    the reference size."""
    pca = projection(synth, components, seed)
    halves = np.array_split(rng.permutation(len(holdout)), 2)
    member_halves = np.array_split(rng.permutation(len(train)), 2)
    s_members, s_non = np.empty(len(train)), np.empty(len(holdout))
    for fold in (0, 1):
        ref, scored = halves[fold], halves[1 - fold]
        mem = member_halves[fold]
        s_m, s_n = domias_scores(
            train[mem], holdout[scored], holdout[ref], synth, pca, bandwidth_factor
        )
        s_members[mem], s_non[scored] = s_m, s_n
    return s_members, s_non, pca, len(halves[0])


def patient_scores(
    train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The DOMIAS score of every training patient and every holdout patient (no subsampling of
    either: the steward's per-patient view ranks them all), as the Review's attack computes it."""
    if len(holdout) < 10:
        raise ConfigError(
            f"DOMIAS needs at least 10 holdout records (two reference halves), got {len(holdout)}"
        )
    rng = np.random.default_rng(seed)
    if len(synth) > MAX_RECORDS:
        synth = synth[np.sort(rng.choice(len(synth), MAX_RECORDS, replace=False))]
    s_members, s_non, _, _ = cross_fitted_scores(
        train, holdout, synth, COMPONENTS, SYNTHETIC_BANDWIDTH, rng, seed
    )
    return s_members, s_non


def domias(
    train: np.ndarray,
    holdout: np.ndarray,
    synth: np.ndarray,
    *,
    components: int = COMPONENTS,
    bandwidth_factor: float = SYNTHETIC_BANDWIDTH,
    max_records: int = MAX_RECORDS,
    seed: int = 0,
) -> MetricResult:
    """DOMIAS density-ratio attack, cross-fitted over two halves of the holdout (see the module
    notes). Value = AUROC (0.5: the attacker does no better than chance; 1: every member found),
    with its DeLong interval; details carry TPR at 0.1 / 1 / 10% FPR with Clopper-Pearson
    intervals and the epsilon lower bound (:mod:`core.metrics.attack_stats`)."""
    if len(holdout) < 10:
        raise ConfigError(
            f"DOMIAS needs at least 10 holdout records (two reference halves), got {len(holdout)}"
        )
    if not bandwidth_factor > 0:
        raise ConfigError(f"the DOMIAS bandwidth factor must be positive, got {bandwidth_factor}")
    if len(train) < 2 or len(synth) < 2:
        raise ConfigError("DOMIAS needs at least two training and two synthetic records")
    rng = np.random.default_rng(seed)
    members_from = len(train)
    if len(train) > max_records:
        train = train[np.sort(rng.choice(len(train), max_records, replace=False))]
    synth_from = len(synth)
    if len(synth) > max_records:
        synth = synth[np.sort(rng.choice(len(synth), max_records, replace=False))]
    s_members, s_non, pca, reference_size = cross_fitted_scores(
        train, holdout, synth, components, bandwidth_factor, rng, seed
    )
    d = pca.n_components_
    st = attack_stats(s_members, s_non)
    return MetricResult(
        id=MetricId.DOMIAS,
        name="DOMIAS density-ratio attack AUROC",
        category="privacy",
        value=st.auroc,
        higher_is_better=False,
        ideal=0.5,
        lower_bound=0.0,
        upper_bound=1.0,
        ci=st.auroc_ci,
        details={
            **st.details(),
            "advantage": st.advantage,
            "components": int(d),
            "variance_kept": float(pca.explained_variance_ratio_.sum()),
            "bandwidth_synthetic": bandwidth_factor * scott_bandwidth(len(synth), d),
            "bandwidth_reference": scott_bandwidth(reference_size, d),
            "reference_size": reference_size,
            "members_from": members_from,
            "synthetic_from": synth_from,
            "synthetic_used": len(synth),
        },
    )
