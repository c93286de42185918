"""Fidelity, utility and privacy of visit sequences (synthetic vs real), as pure functions.

- visits per patient and gaps between visits: distribution distances;
- code prevalence by visit index, and consecutive-visit code co-occurrence: R^2 to the diagonal;
- longitudinal and cross-modality perplexity (after PromptEHR / EHRPD): a next-visit (or
  other-modality) code predictor fitted on one set and scored on the real holdout; the
  real-trained value is the ideal;
- next-visit TSTR: predict one code at visit k+1 from visits <= k, trained on synthetic vs real;
- augmentation (MedDiffusion): a risk predictor trained on real vs real + synthetic sequences.
Patient-level membership inference runs on the patients' code bags with the record-level attack.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import stats
from sklearn.linear_model import LogisticRegression

from core.data.visits import VisitCohort
from core.errors import ConfigError
from core.metrics.base import MetricResult
from core.metrics.bootstrap import (
    cluster_resamples,
    interval,
    record_resamples,
)
from core.metrics.ids import MetricId
from core.metrics.ranking import Ranking, auroc

Vocab = dict[str, tuple[str, ...]]
MAX_INDEX = 5  # prevalence by visit index: visits 1..5 (later ones are few)


def _r2_to_diagonal(real: np.ndarray, synth: np.ndarray) -> float:
    ss_res = float(((real - synth) ** 2).sum())
    ss_tot = float(((real - real.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def visits_per_patient(real: VisitCohort, synth: VisitCohort) -> MetricResult:
    r, s = real.visits_per_patient(), synth.visits_per_patient()
    return MetricResult(
        name="Visits per patient (Wasserstein-1)",
        category="fidelity",
        value=float(stats.wasserstein_distance(r, s)),
        higher_is_better=False,
        ideal=0.0,
        lower_bound=0.0,
        details={"real_mean": float(r.mean()), "synthetic_mean": float(s.mean())},
        id=MetricId.VISITS_PER_PATIENT,
    )


def gap_distribution(real: VisitCohort, synth: VisitCohort) -> MetricResult:
    """KS statistic of log(1 + days) between consecutive visits (known gaps only)."""
    r, s = np.log1p(real.known_gaps()), np.log1p(synth.known_gaps())
    if len(r) < 2 or len(s) < 2:
        raise ConfigError("gap distribution needs at least two known gaps in each set")
    return MetricResult(
        name="Gaps between visits (KS, log days)",
        category="fidelity",
        value=float(stats.ks_2samp(r, s).statistic),
        higher_is_better=False,
        ideal=0.0,
        lower_bound=0.0,
        upper_bound=1.0,
        details={
            "wasserstein_log1p_days": float(stats.wasserstein_distance(r, s)),
            "real_median_days": float(np.expm1(np.median(r))),
            "synthetic_median_days": float(np.expm1(np.median(s))),
            "real_known_gaps": len(r),
        },
        id=MetricId.GAPS,
    )


def _by_index(cohort: VisitCohort, vocab: Vocab) -> np.ndarray:
    hot = cohort.multi_hot(vocab)
    index = cohort.visit_index()
    out = np.zeros((MAX_INDEX, hot.shape[1]))
    for k in range(MAX_INDEX):
        rows = np.flatnonzero(index == k)
        if len(rows):
            out[k] = np.asarray(hot[rows].mean(axis=0)).ravel()
    return out


def prevalence_by_visit(real: VisitCohort, synth: VisitCohort, vocab: Vocab) -> MetricResult:
    r, s = _by_index(real, vocab), _by_index(synth, vocab)
    return MetricResult(
        name="Code prevalence by visit index (R²)",
        category="fidelity",
        value=_r2_to_diagonal(r.ravel(), s.ravel()),
        higher_is_better=True,
        ideal=1.0,
        upper_bound=1.0,
        details={"visit_indices": MAX_INDEX, "mean_abs_difference": float(np.abs(r - s).mean())},
        id=MetricId.PREVALENCE_BY_VISIT,
    )


def _pairs(cohort: VisitCohort, vocab: Vocab) -> tuple[sp.csr_array, sp.csr_array, np.ndarray]:
    """(visit k codes, visit k+1 codes, patient) for every consecutive pair."""
    hot = cohort.multi_hot(vocab)
    nxt = np.flatnonzero(cohort.visit_index() > 0)
    return hot[nxt - 1], hot[nxt], cohort.visit_patient[nxt]


def consecutive_cooccurrence(
    real: VisitCohort, synth: VisitCohort, vocab: Vocab, top: int = 60
) -> MetricResult:
    """R² of the frequencies of (code i at visit k, code j at visit k+1) over the ``top`` most
    common real codes: does synthetic data keep what follows what?"""
    r_prev, r_next, _ = _pairs(real, vocab)
    s_prev, s_next, _ = _pairs(synth, vocab)
    if r_prev.shape[0] == 0 or s_prev.shape[0] == 0:
        raise ConfigError("co-occurrence needs patients with two or more visits in both sets")
    keep = np.argsort(-np.asarray(real.multi_hot(vocab).sum(axis=0)).ravel())[:top]
    r = (r_prev[:, keep].T @ r_next[:, keep]).toarray() / r_prev.shape[0]
    s = (s_prev[:, keep].T @ s_next[:, keep]).toarray() / s_prev.shape[0]
    return MetricResult(
        name="Consecutive-visit co-occurrence (R²)",
        category="fidelity",
        value=_r2_to_diagonal(r.ravel(), s.ravel()),
        higher_is_better=True,
        ideal=1.0,
        upper_bound=1.0,
        details={"codes": len(keep), "real_pairs": int(r_prev.shape[0])},
        id=MetricId.COOCCURRENCE,
    )


def _fit_multilabel(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multi-label logistic regression, p = sigmoid(x W + b), by full-batch gradient descent with
    a small L2 penalty: deterministic, and one fit for all codes instead of one per code."""
    rng = np.random.default_rng(0)
    d_in, d_out = x.shape[1], y.shape[1]
    w = rng.normal(0, 0.01, (d_in, d_out))
    prior = np.clip(y.mean(axis=0), 1e-4, 1 - 1e-4)
    b = np.log(prior / (1 - prior))
    lr = 0.5
    for _ in range(200):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = p - y
        w -= lr * (x.T @ g / len(x) + 1e-3 * w)
        b -= lr * g.mean(axis=0)
    return w, b


def _perplexity(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """exp(-mean log q(c)) over the present codes, q = predicted probabilities normalised over
    the vocabulary: the effective number of codes the predictor hesitates between."""
    p = 1 / (1 + np.exp(-(x @ w + b)))
    q = p / p.sum(axis=1, keepdims=True)
    rows, cols = np.nonzero(y)
    if len(rows) == 0:
        return float("nan")
    return float(np.exp(-np.log(np.clip(q[rows, cols], 1e-12, None)).mean()))


def longitudinal_perplexity(
    train: VisitCohort, synth: VisitCohort, holdout: VisitCohort, vocab: Vocab
) -> MetricResult:
    """Next-visit code perplexity on real holdout pairs of a predictor fitted on synthetic pairs;
    the ideal is the same predictor fitted on the real training pairs."""
    h_prev, h_next, _ = _pairs(holdout, vocab)
    if h_prev.shape[0] == 0:
        raise ConfigError("perplexity needs holdout patients with two or more visits")
    out = {}
    for name, cohort in (("real", train), ("synthetic", synth)):
        prev, nxt, _ = _pairs(cohort, vocab)
        if prev.shape[0] == 0:
            raise ConfigError(f"perplexity needs {name} patients with two or more visits")
        w, b = _fit_multilabel(prev.toarray(), nxt.toarray())
        out[name] = _perplexity(w, b, h_prev.toarray(), h_next.toarray())
    return MetricResult(
        name="Longitudinal perplexity (next visit)",
        category="utility",
        value=out["synthetic"],
        higher_is_better=False,
        ideal=out["real"],
        lower_bound=1.0,
        details={"trained_on_real": out["real"], "holdout_pairs": int(h_prev.shape[0])},
        id=MetricId.LONGITUDINAL_PERPLEXITY,
    )


def cross_modality_perplexity(
    train: VisitCohort, synth: VisitCohort, holdout: VisitCohort, vocab: Vocab
) -> MetricResult:
    """Perplexity of one modality's codes (the last) from the others' in the same visit."""
    if len(vocab) < 2:
        raise ConfigError("cross-modality perplexity needs two or more modalities")
    target = list(vocab)[-1]
    given = {m: v for m, v in vocab.items() if m != target}

    def xy(cohort: VisitCohort) -> tuple[np.ndarray, np.ndarray]:
        return cohort.multi_hot(given).toarray(), cohort.multi_hot(
            {target: vocab[target]}
        ).toarray()

    hx, hy = xy(holdout)
    out = {}
    for name, cohort in (("real", train), ("synthetic", synth)):
        w, b = _fit_multilabel(*xy(cohort))
        out[name] = _perplexity(w, b, hx, hy)
    return MetricResult(
        name=f"Cross-modality perplexity ({target} from the rest)",
        category="utility",
        value=out["synthetic"],
        higher_is_better=False,
        ideal=out["real"],
        lower_bound=1.0,
        details={"trained_on_real": out["real"], "target_modality": target},
        id=MetricId.CROSS_MODALITY_PERPLEXITY,
    )


def _history_features(
    cohort: VisitCohort, vocab: Vocab
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each visit k with a visit k+1: [codes at k, codes seen before k, log gap to k+1]; the
    next visit's codes; the patient."""
    hot = cohort.multi_hot(vocab).toarray()
    idx = cohort.visit_index()
    nxt = np.flatnonzero(idx > 0)
    cum = np.zeros_like(hot)
    for lo, hi in zip(
        np.r_[0, np.cumsum(cohort.visits_per_patient())[:-1]],
        np.cumsum(cohort.visits_per_patient()),
        strict=True,
    ):
        cum[lo:hi] = np.cumsum(hot[lo:hi], axis=0) - hot[lo:hi]
    gap = np.log1p(np.nan_to_num(cohort.gap_days[nxt], nan=0.0))[:, None]
    x = np.hstack([hot[nxt - 1], np.minimum(cum[nxt - 1], 3) / 3, gap])
    return x, hot[nxt], cohort.visit_patient[nxt]


def _bootstrap_auc(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float]:
    values = Ranking.of(y, p).over_resamples("auroc", cluster_resamples(groups, n_boot, seed))
    return interval(values[np.isfinite(values)])


def next_visit_tstr(
    train: VisitCohort,
    synth: VisitCohort,
    holdout: VisitCohort,
    vocab: Vocab,
    *,
    code: tuple[str, str] | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> MetricResult:
    """AUROC on real holdout pairs of predicting ``code`` at visit k+1 from visits <= k, with a
    model trained on synthetic pairs (TSTR) and on real ones (TRTR, the ideal). The default code
    is the most common one at later visits with at least 20 positives in the holdout."""
    names = [(m, c) for m, v in vocab.items() for c in v]
    hx, hy, hp = _history_features(holdout, vocab)
    if code is None:
        counts = hy.sum(axis=0)
        ok = np.flatnonzero((counts >= 20) & (counts <= len(hy) - 20))
        if not len(ok):
            raise ConfigError("no code has 20 positives and 20 negatives at later holdout visits")
        j = int(ok[np.argmax(counts[ok])])
    else:
        j = names.index(code)
    out = {}
    for name, cohort in (("real", train), ("synthetic", synth)):
        x, y, _ = _history_features(cohort, vocab)
        if len(np.unique(y[:, j])) < 2:
            raise ConfigError(
                f"the {name} set never (or always) has the target code at later visits"
            )
        clf = LogisticRegression(C=0.5, max_iter=500).fit(x, y[:, j])
        p = clf.predict_proba(hx)[:, 1]
        out[name] = (auroc(hy[:, j], p), _bootstrap_auc(hy[:, j], p, hp, n_boot, seed))
    return MetricResult(
        name=f"Next-visit TSTR AUROC ({names[j][0]}:{names[j][1]})",
        category="utility",
        value=float(out["synthetic"][0]),
        higher_is_better=True,
        ideal=float(out["real"][0]),
        lower_bound=0.0,
        upper_bound=1.0,
        ci=out["synthetic"][1],
        details={"trtr_ci": out["real"][1], "target": f"{names[j][0]}:{names[j][1]}"},
        id=MetricId.NEXT_VISIT_TSTR,
    )


def augmentation_auroc(
    train: VisitCohort,
    synth: VisitCohort,
    holdout: VisitCohort,
    vocab: Vocab,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> MetricResult:
    """MedDiffusion's experiment: a risk predictor (patient label from the code bag and visit
    count) trained on real patients vs real + synthetic; AUROC on the real holdout with a
    patient bootstrap CI of the difference."""

    def xy(c: VisitCohort) -> tuple[np.ndarray, np.ndarray]:
        bag = sp.csr_array(
            (np.ones(c.n_visits), (c.visit_patient, np.arange(c.n_visits))),
            shape=(c.n_patients, c.n_visits),
        )
        x = ((bag @ c.multi_hot(vocab)) > 0).astype(float).toarray()
        x = np.hstack([x, np.log1p(c.visits_per_patient())[:, None]])
        known = c.labels >= 0
        return x[known], c.labels[known]

    if any(c.labels is None for c in (train, synth, holdout)):
        raise ConfigError("the augmentation experiment needs a label on every set")
    (xr, yr), (xs, ys), (xh, yh) = xy(train), xy(synth), xy(holdout)
    if len(np.unique(yh)) < 2 or len(np.unique(yr)) < 2:
        raise ConfigError("the label has one class only in the real train or holdout set")
    p_real = LogisticRegression(C=0.5, max_iter=1000).fit(xr, yr).predict_proba(xh)[:, 1]
    p_aug = (
        LogisticRegression(C=0.5, max_iter=1000)
        .fit(np.vstack([xr, xs]), np.r_[yr, ys])
        .predict_proba(xh)[:, 1]
    )
    resamples = list(record_resamples(len(yh), n_boot, seed))
    aug, real = (Ranking.of(yh, p).over_resamples("auroc", resamples) for p in (p_aug, p_real))
    diffs = (aug - real)[np.isfinite(aug - real)]
    diff_ci = interval(diffs) if len(diffs) else None
    auc_real, auc_aug = auroc(yh, p_real), auroc(yh, p_aug)
    return MetricResult(
        name="Augmentation: risk AUROC, real + synthetic",
        category="utility",
        value=float(auc_aug),
        higher_is_better=True,
        ideal=float(auc_real),
        lower_bound=0.0,
        upper_bound=1.0,
        ci=None if diff_ci is None else (diff_ci[0] + auc_real, diff_ci[1] + auc_real),
        details={
            "real_only_auroc": float(auc_real),
            "difference": float(auc_aug - auc_real),
            "difference_ci": diff_ci,
            "holdout_patients": int(len(yh)),
        },
        id=MetricId.AUGMENTATION,
    )
