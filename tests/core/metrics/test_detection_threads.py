"""Detection fits its boosted trees on one OpenMP thread, in its own thread only."""

from __future__ import annotations

import threading

import numpy as np
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from threadpoolctl import threadpool_limits

from core.metrics import detection


def test_detection_runs_on_one_openmp_thread_and_leaves_other_threads_alone(monkeypatch):
    seen: dict[str, int] = {}
    ready, inside, other_ran = threading.Event(), threading.Event(), threading.Event()
    fit = detection.out_of_fold_scores

    def spy(*args, **kwargs):
        seen.setdefault("detection", _openmp_effective_n_threads())
        inside.set()
        other_ran.wait(10)
        return fit(*args, **kwargs)

    def another_session() -> None:
        with threadpool_limits(2, user_api="openmp"):  # two threads, set before detection starts
            ready.set()
            inside.wait(10)
            seen["another thread meanwhile"] = _openmp_effective_n_threads()
        other_ran.set()

    monkeypatch.setattr(detection, "out_of_fold_scores", spy)
    x = np.random.default_rng(0).normal(size=(60, 4))
    with threadpool_limits(2, user_api="openmp"):  # as on a 2-core machine, whatever runs the test
        other = threading.Thread(target=another_session)
        other.start()
        ready.wait(10)
        detection.detection(x, x + 0.5, x[:20], n_boot=5)
        other.join()
        assert seen == {"detection": 1, "another thread meanwhile": 2}
        assert _openmp_effective_n_threads() == 2  # restored afterwards
