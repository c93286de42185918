"""Privacy risk of releasing a synthetic set, measured against the real train (members) and
holdout (non-members) records. All distances are L1 / Hamming on the encoded vectors.

Every function returns a :class:`MetricResult`; its ``details`` keep what the page plots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from core.errors import ConfigError
from core.metrics.attack_stats import attack_stats
from core.metrics.base import GateEvidence, MetricResult
from core.metrics.distances import nearest, nearest_distances
from core.metrics.ids import MetricId
from core.metrics.leak_statistics import (
    balanced_dcr,
    membership_details,
    membership_evidence,
    null_summary,
)


def _balanced(train: np.ndarray, holdout: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-size member and non-member sets (the larger one is subsampled), so chance is 0.5.
    The review's attacks no longer use it (every training patient is a target, issue #30)."""
    rng = np.random.default_rng(seed)
    n = min(len(train), len(holdout))
    if n < 2:
        raise ConfigError("privacy metrics need at least two training and two holdout records")

    def pick(x: np.ndarray) -> np.ndarray:
        return x if len(x) == n else x[rng.choice(len(x), n, replace=False)]

    return pick(train), pick(holdout)


def _advantages(d: np.ndarray, members: np.ndarray) -> float:
    """max over thresholds of TPR - FPR for "member when the nearest synthetic record is within
    the threshold"; ties in ``d`` move together, as a threshold cannot split them."""
    order = np.argsort(d, kind="stable")
    ds = d[order]
    return _sorted_advantage(members[order], np.r_[ds[1:] != ds[:-1], True])


def _sorted_advantage(ms: np.ndarray, last: np.ndarray) -> float:
    """``ms``: member flags in distance order; ``last``: ends of groups of equal distances."""
    tpr = np.cumsum(ms)[last] / ms.sum()
    fpr = np.cumsum(~ms)[last] / (~ms).sum()
    return float(max(0.0, np.max(tpr - fpr)))


PERMUTATIONS = 800


def _targets(train: np.ndarray, holdout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every training and every holdout patient as attack targets (issue #30: no subsample)."""
    if min(len(train), len(holdout)) < 2:
        raise ConfigError("privacy metrics need at least two training and two holdout records")
    return train, holdout


def advantage_null(
    d: np.ndarray, members: np.ndarray, *, permutations: int = PERMUTATIONS, seed: int = 0
) -> np.ndarray:
    """The attacker's best-threshold advantage when membership is independent of the synthetic
    set: the same distances with the member / non-member labels permuted. Exact for "the model
    never saw the training patients" (train and holdout are then exchangeable), and it includes
    the upward bias of taking the best of many thresholds."""
    rng = np.random.default_rng(seed)
    ds = np.sort(d, kind="stable")
    last = np.r_[ds[1:] != ds[:-1], True]
    return np.array(
        [_sorted_advantage(rng.permutation(members), last) for _ in range(permutations)]
    )


def membership_inference(
    train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, *, seed: int = 0
) -> MetricResult:
    """Distance attack (CorGAN / FLEXGEN-EHR protocol): a real record is called a training member
    when its nearest synthetic record is close. Reports the attacker's best-threshold accuracy
    (0.5 = no better than chance), AUROC and advantage (max TPR - FPR, 0 ideal), and the
    battery's common fields (:mod:`core.metrics.attack_stats`): the AUROC's DeLong interval, TPR
    at 0.1 / 1 / 10% FPR with Clopper-Pearson intervals and the epsilon lower bound. Every
    training patient is a target; accuracy is balanced (mean of TPR and 1 - FPR), so chance stays
    0.5 with unequal groups (issue #30)."""
    members, non_members = _targets(train, holdout)
    d = nearest_distances(np.concatenate([members, non_members]), synth)[:, 0]
    y = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    score = -d
    auc = float(roc_auc_score(y, score))
    fpr, tpr, _ = roc_curve(y, score)
    acc = float(np.max((tpr + 1 - fpr) / 2))
    advantage = _advantages(d, y.astype(bool))
    null = advantage_null(d, y.astype(bool), seed=seed)
    battery = attack_stats(score[: len(members)], score[len(members) :]).details()
    # the gate's membership check (issue #30): low-FPR advantage, its spread and null
    evidence = membership_evidence(d, y.astype(bool), seed=seed)
    return MetricResult(
        id=MetricId.MIA,
        name="Membership inference accuracy (distance attack)",
        category="privacy",
        value=acc,
        higher_is_better=False,
        ideal=0.5,
        lower_bound=0.5,
        upper_bound=1.0,
        details={
            **battery,  # its ROC curve is thinned on a log-FPR grid, its AUROC the one below
            "auroc": auc,
            "advantage": advantage,
            "null_advantage": null_summary(null, advantage).as_dict(),
            "member_distance_median": float(np.median(d[: len(members)])),
            "non_member_distance_median": float(np.median(d[len(members) :])),
            **membership_details(evidence),
        },
        evidence=evidence,
    )


def distance_to_closest_record(
    train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, *, seed: int = 0
) -> MetricResult:
    """DCR: for each synthetic record, the distance to its closest train and closest holdout
    record, every training patient included. Value = share closer to train with both groups
    weighted equally (:func:`core.metrics.leak_statistics.balanced_dcr`; ties count as chance);
    0.5 means the synthetic data is no closer to the training patients than to unseen ones."""
    tr, ho = _targets(train, holdout)
    d_train, i_train = (a[:, 0] for a in nearest(synth, tr))
    d_holdout, i_holdout = (a[:, 0] for a in nearest(synth, ho))
    share, share_se = balanced_dcr(d_train, d_holdout, i_train, i_holdout, len(tr), len(ho))
    return MetricResult(
        id=MetricId.DCR,
        name="DCR: share of synthetic records closer to train than holdout",
        category="privacy",
        value=share,
        higher_is_better=False,
        ideal=0.5,
        lower_bound=0.0,
        upper_bound=1.0,
        details={
            "dcr_train": d_train.tolist(),
            "dcr_holdout": d_holdout.tolist(),
            "median_train": float(np.median(d_train)),
            "median_holdout": float(np.median(d_holdout)),
            "n_train": len(tr),
            "n_holdout": len(ho),
            "n_synthetic": len(d_train),
            "share_se": share_se,  # permutation standard error (issue #30)
        },
        evidence=GateEvidence(share - 0.5, share_se),  # the excess over chance
    )


TrainNeighbours = tuple[np.ndarray, np.ndarray]


def train_neighbours(train: np.ndarray, holdout: np.ndarray, synth: np.ndarray) -> TrainNeighbours:
    """Two closest training distances of each synthetic and each holdout record, computed once for
    :func:`exact_copies` and :func:`nearest_neighbour_distance_ratio`."""
    return nearest_distances(synth, train, k=2), nearest_distances(holdout, train, k=2)


def _row_keys(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32) + np.float32(0.0)  # -0.0 -> 0.0
    return x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()


def _has_identical(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Whether each query row equals some reference row (distance 0), by hashing rows rather
    than a nearest-neighbour search."""
    return np.isin(_row_keys(query), _row_keys(reference))


def exact_copies(
    train: np.ndarray,
    holdout: np.ndarray,
    synth: np.ndarray,
    neighbours: TrainNeighbours | None = None,
) -> MetricResult:
    """Share of synthetic records identical to some training record. Sparse code data has natural
    duplicates, so the share of real holdout records identical to a training record is reported
    as the baseline an honest generator would also show."""
    d_synth, d_holdout = neighbours or train_neighbours(train, holdout, synth)
    synth_rate = float(np.mean(d_synth[:, 0] == 0))
    baseline = float(np.mean(d_holdout[:, 0] == 0))
    # The test statistic, per synthetic record: how many holdout-sized blocks of the training
    # records hold an identical record, minus k times whether the holdout does. Under "never saw
    # the training patients" every block is exchangeable with the holdout, so its mean is 0 (also
    # for code data, whose natural duplicates fall in both); a copied training record adds 1.
    rng = np.random.default_rng(0)
    k = max(len(train) // max(len(holdout), 1), 1)
    size = min(len(holdout), len(train))
    blocks = np.array_split(rng.permutation(len(train))[: k * size], k)
    in_blocks = sum(_has_identical(synth, train[b]).astype(float) for b in blocks)
    ho = holdout if len(holdout) == size else holdout[rng.choice(len(holdout), size, replace=False)]
    copy_holdout = _has_identical(synth, ho)
    diff = in_blocks - k * copy_holdout.astype(float)
    excess = float(diff.mean())
    excess_se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return MetricResult(
        id=MetricId.EXACT_COPIES,
        name="Exact copies of training records",
        category="privacy",
        value=synth_rate,
        higher_is_better=False,
        ideal=0.0,
        lower_bound=0.0,
        upper_bound=1.0,
        details={
            "holdout_baseline": baseline,
            "excess_over_holdout": excess,
            "excess_se": excess_se,
            "synthetic_copies_of_holdout": float(copy_holdout.mean()),
        },
        evidence=GateEvidence(excess, excess_se),
    )


def nearest_neighbour_distance_ratio(
    train: np.ndarray,
    holdout: np.ndarray,
    synth: np.ndarray,
    neighbours: TrainNeighbours | None = None,
) -> MetricResult:
    """Mean NNDR (closest / second-closest training distance) of synthetic records; values near 0
    mean records sit on top of one training patient. The holdout's NNDR is the reference."""

    def ratio(d: np.ndarray) -> np.ndarray:
        return np.where(d[:, 1] > 0, d[:, 0] / np.maximum(d[:, 1], 1e-12), 1.0)

    d_synth, d_holdout = neighbours or train_neighbours(train, holdout, synth)
    synth_r, holdout_r = ratio(d_synth), ratio(d_holdout)
    return MetricResult(
        id=MetricId.NNDR,
        name="Nearest-neighbour distance ratio (synthetic to train)",
        category="privacy",
        value=float(synth_r.mean()),
        higher_is_better=True,
        ideal=float(holdout_r.mean()),
        lower_bound=0.0,
        upper_bound=1.0,
        details={"holdout_reference": float(holdout_r.mean())},
    )


def attribute_inference(
    train: np.ndarray,
    holdout: np.ndarray,
    synth: np.ndarray,
    *,
    known: np.ndarray,
    sensitive: np.ndarray,
    k: int = 1,
    seed: int = 0,
) -> MetricResult:
    """An attacker who knows the ``known`` dimensions of a patient looks up the ``k`` nearest
    synthetic records on those and predicts the ``sensitive`` 0/1 dimensions by majority. Value =
    micro-F1 on training patients minus micro-F1 on holdout patients (0 = the synthetic data tells
    no more about training patients than about unseen ones)."""
    if len(known) == 0 or len(sensitive) == 0:
        raise ConfigError("attribute inference needs known and sensitive dimensions")
    members, non_members = _targets(train, holdout)

    def counts(targets: np.ndarray) -> np.ndarray:
        """Per patient: true positives, predicted positives, actual positives."""
        _, idx = nearest(targets[:, known], synth[:, known], k=k)
        pred = synth[idx][:, :, sensitive].mean(axis=1) > 0.5
        truth = targets[:, sensitive] > 0.5
        return np.stack([(pred & truth).sum(1), pred.sum(1), truth.sum(1)], axis=1).astype(float)

    def f1(c: np.ndarray) -> float:
        denom = c[:, 1].sum() + c[:, 2].sum()
        return float(2 * c[:, 0].sum() / denom) if denom > 0 else 1.0

    c_all = np.vstack([counts(members), counts(non_members)])
    is_member = np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)]
    f_members, f_non = f1(c_all[is_member]), f1(c_all[~is_member])
    # Null: the same patients with membership permuted (exact when the synthetic set never saw
    # the training patients).
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(PERMUTATIONS):
        perm = rng.permutation(is_member)
        null.append(f1(c_all[perm]) - f1(c_all[~perm]))
    null_gap = null_summary(np.asarray(null), f_members - f_non)
    return MetricResult(
        id=MetricId.ATTRIBUTE_INFERENCE,
        name="Attribute inference gap (F1 members - F1 non-members)",
        category="privacy",
        value=f_members - f_non,
        higher_is_better=False,
        ideal=0.0,
        lower_bound=-1.0,
        upper_bound=1.0,
        details={
            "f1_members": f_members,
            "f1_non_members": f_non,
            "known_dims": len(known),
            "sensitive_dims": len(sensitive),
            "k": k,
            "null_gap": null_gap.as_dict(),
        },
        evidence=GateEvidence(f_members - f_non, null=null_gap),
    )


def roc_frame(result: MetricResult) -> pd.DataFrame:
    return pd.DataFrame({"fpr": result.details["roc_fpr"], "tpr": result.details["roc_tpr"]})


def privacy_filter(
    train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, *, quantile: float = 0.01
) -> tuple[np.ndarray, float]:
    """Which synthetic records to keep: those no closer to a training patient than the
    ``quantile`` of the distances from holdout patients to their nearest training patient (how
    close an unseen patient comes by chance). Returns the keep mask and that radius."""
    if not 0.0 <= quantile < 0.5:
        raise ConfigError(f"The filter quantile must be in [0, 0.5), got {quantile}.")
    radius = float(np.quantile(nearest_distances(holdout, train)[:, 0], quantile))
    d = nearest_distances(synth, train)[:, 0]
    keep = d > radius if radius > 0 else d > 0
    return keep, radius
