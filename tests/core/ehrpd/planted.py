"""A planted visit-sequence generator with known answers: a Markov chain over three code
clusters, log-normal gaps and geometric sequence lengths."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data.visits import VisitCohort, from_frames

TRANSITIONS = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
CLUSTER_CODES = (("a1", "a2", "a3", "a4"), ("b1", "b2", "b3", "b4"), ("c1", "c2", "c3", "c4"))
CODE_P = 0.85  # each of the cluster's codes appears with this probability
GAP_LOG_MEAN, GAP_LOG_STD = np.log(30.0), 0.5  # days
CONTINUE_P, MAX_VISITS = 0.75, 8


def planted_chain(n_patients: int, seed: int = 0) -> VisitCohort:
    rng = np.random.default_rng(seed)
    visits, events = [], []
    for p in range(n_patients):
        state = rng.integers(3)
        k = 0
        while True:
            key = f"p{p:05d}|{k}"
            gap = 0.0 if k == 0 else float(np.exp(rng.normal(GAP_LOG_MEAN, GAP_LOG_STD)))
            visits.append((key, f"p{p:05d}", k, gap))
            for code in CLUSTER_CODES[state]:
                if rng.random() < CODE_P:
                    events.append((key, "diagnosis", code))
            k += 1
            if k >= MAX_VISITS or rng.random() > CONTINUE_P:
                break
            state = rng.choice(3, p=TRANSITIONS[state])
    return from_frames(
        name="planted chain",
        visits=pd.DataFrame(visits, columns=["key", "patient", "order", "gap_days"]),
        events=pd.DataFrame(events, columns=["key", "modality", "code"]),
        modalities=("diagnosis",),
        source="planted Markov chain",
    )


def cluster_of_visits(cohort: VisitCohort) -> np.ndarray:
    """Each visit's cluster: the one whose codes it holds most of (-1 for an empty visit)."""
    vocab = tuple(c for cluster in CLUSTER_CODES for c in cluster)
    hot = cohort.multi_hot({"diagnosis": vocab}).toarray().reshape(cohort.n_visits, 3, 4).sum(-1)
    return np.where(hot.max(axis=1) > 0, hot.argmax(axis=1), -1)


def transition_matrix(cohort: VisitCohort) -> np.ndarray:
    cluster = cluster_of_visits(cohort)
    later = cohort.visit_index() > 0
    prev, cur = cluster[np.flatnonzero(later) - 1], cluster[later]
    ok = (prev >= 0) & (cur >= 0)
    counts = np.zeros((3, 3))
    np.add.at(counts, (prev[ok], cur[ok]), 1)
    return counts / counts.sum(axis=1, keepdims=True)
