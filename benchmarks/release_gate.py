"""Known-answer rates of the release gate over cohort sizes.

    python -m benchmarks.release_gate [--sizes 100,300,1000,3000,10000] [--reps 40]

For a population of mixed records (6 continuous, 6 binary, correlated), each repetition draws a
cohort of N, splits it 80/20 by patient, and gates three synthetic sets of the training split's
size: an independent draw from the population (never saw anyone: should pass, or be
inconclusive at small N, in >= 95% of repetitions), a copy of the training split (should fail at
N >= 300) and an independent draw with 10% of its records replaced by training records (should
fail at N >= 1,000). Prints the share of repetitions with each verdict.

With ``--anonymeter`` the gate also runs its optional checks (Anonymeter's singling-out,
linkability and inference risks, threshold 0.05 each; the 6 continuous columns numeric, the 6
binary ones categorical, the last binary column the inferred secret).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from core.metrics import anonymeter, privacy
from core.metrics.suite import Review
from core.release.gate import GateThresholds, evaluate_gate

SCENARIOS = ("independent", "copy", "10% copies")


def population(n: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.normal(size=(n, 3))
    cont = 1 / (1 + np.exp(-(z @ rng.normal(size=(3, 6)) * 0.0 + z[:, [0, 0, 1, 1, 2, 2]])))
    binary = (z[:, [0, 1, 2, 0, 1, 2]] + rng.normal(size=(n, 6)) > 0.3).astype(float)
    return np.hstack([np.round(cont, 3), binary]).astype(np.float32)


def synthetic(kind: str, train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    fresh = population(len(train), rng)
    if kind == "copy":
        return train.copy()
    if kind == "10% copies":
        k = max(1, len(train) // 10)
        fresh[:k] = train[rng.choice(len(train), k, replace=False)]
    return fresh


def anonymeter_results(train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, seed: int):
    columns = tuple(f"x{j}" for j in range(train.shape[1]))
    categorical = np.r_[np.zeros(6, bool), np.ones(6, bool)]
    tables = anonymeter.AttackTables(train, holdout, synth, columns, categorical)
    return [
        anonymeter.singling_out(tables, seed=seed),
        anonymeter.linkability(tables, seed=seed),
        anonymeter.inference(tables, secret=train.shape[1] - 1, seed=seed),
    ]


def privacy_review(train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, seed: int) -> Review:
    known, sensitive = np.arange(0, 9), np.arange(9, 12)
    results = [
        privacy.membership_inference(train, holdout, synth, seed=seed),
        privacy.exact_copies(train, holdout, synth),
        privacy.distance_to_closest_record(train, holdout, synth, seed=seed),
        privacy.attribute_inference(
            train, holdout, synth, known=known, sensitive=sensitive, seed=seed
        ),
    ]
    return Review("gate", results, {}, "", len(synth), None)


# The privacy checks only: validity (the records' logic) is no known-answer rate of these arrays.
PRIVACY = GateThresholds(invalid_records=None)
ANONYMETER_THRESHOLDS = replace(PRIVACY, singling_out=0.05, linkability=0.05, inference=0.05)


def gate_status(n: int, kind: str, seed: int, with_anonymeter: bool = False) -> str:
    rng = np.random.default_rng(seed)
    cohort = population(n, rng)
    cut = int(round(0.8 * n))
    train, holdout = cohort[:cut], cohort[cut:]
    synth = synthetic(kind, train, rng)
    rv = privacy_review(train, holdout, synth, seed)
    if not with_anonymeter:
        return evaluate_gate(rv, PRIVACY).status
    rv.results.extend(anonymeter_results(train, holdout, synth, seed))
    return evaluate_gate(rv, ANONYMETER_THRESHOLDS).status


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="100,300,1000,3000,10000")
    p.add_argument("--reps", type=int, default=40, help="repetitions per size (fewer above 3,000)")
    p.add_argument("--anonymeter", action="store_true", help="add the optional Anonymeter checks")
    args = p.parse_args()
    print(
        f"{'N':>6} {'scenario':>12} {'reps':>5} {'pass':>6} {'incon.':>6} {'fail':>6} {'s/rep':>6}"
    )
    for n in map(int, args.sizes.split(",")):
        reps = args.reps if n <= 3000 else max(5, args.reps // 5)
        for kind in SCENARIOS:
            start = time.perf_counter()
            got = [gate_status(n, kind, 1000 * n + r, args.anonymeter) for r in range(reps)]
            share = {v: got.count(v) / reps for v in ("pass", "inconclusive", "fail")}
            print(
                f"{n:>6} {kind:>12} {reps:>5} {share['pass']:>6.0%} {share['inconclusive']:>6.0%} "
                f"{share['fail']:>6.0%} {(time.perf_counter() - start) / reps:>6.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
