"""Known-answer rates of the release gate over cohort sizes and scenarios (issue #30).

    python -m benchmarks.release_gate [--sizes 300,1000,3000,4000,10000] [--reps 40]
        [--reps-large 20] [--scenarios ...] [--anonymeter]

For a population of mixed records (6 continuous, 6 binary, correlated), each repetition draws a
cohort of N, splits it 80/20 by patient and gates a synthetic set of the training split's size
(privacy checks only: the floors judge usefulness, which these arrays do not model):

- independent: a fresh draw from the population (never saw anyone: cannot leak);
- copy: the training split itself;
- 10% copies: an independent draw with 10% of its records replaced by training records;
- noised copies: every training record with small noise (continuous values + N(0, 0.02),
  rounded as the population is; binary values kept), so no record is an exact copy;
- overfit model: a simulated memorising generator standing in for a model trained much longer
  on 10% of the cohort (too slow to train per repetition on 2 CPU cores): records drawn with
  replacement from a random 10% of the training patients, with the same small noise;
- duplicated canaries: 1% of the training patients, as if duplicated 10 times in training,
  reproduced verbatim 10 times each (Carlini et al. 2023: duplicated training records are
  regurgitated), the rest an independent draw;
- at threshold: an independent draw in which each training patient has a near copy (noise of
  sd 0.002, far below any unseen patient's distance to the set) with probability 5%: a
  membership advantage of 0.05 at every N, the default threshold. The gate may pass it in at
  most 5% of repetitions (its stated error rate); inconclusive or fail are both right.

Prints the share of repetitions with each verdict and, per size, the membership advantage the
holdout detects with 80% power. Targets (issue #30): at N >= 1,000 every planted leak fails in
>= 95% of repetitions; data that cannot leak passes in >= 8 of 10 and fails in <= 1 at 4,000.

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
from core.release.gate import GateThresholds, detectable_advantage, evaluate_gate

SCENARIOS = (
    "independent",
    "copy",
    "10% copies",
    "noised copies",
    "overfit model",
    "duplicated canaries",
    "at threshold",
)
NOISE = 0.02  # sd of the noise on continuous values (their population sd is about 0.2)


def population(n: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.normal(size=(n, 3))
    cont = 1 / (1 + np.exp(-(z @ rng.normal(size=(3, 6)) * 0.0 + z[:, [0, 0, 1, 1, 2, 2]])))
    binary = (z[:, [0, 1, 2, 0, 1, 2]] + rng.normal(size=(n, 6)) > 0.3).astype(float)
    return np.hstack([np.round(cont, 3), binary]).astype(np.float32)


def noised(x: np.ndarray, rng: np.random.Generator, sd: float = NOISE) -> np.ndarray:
    """Training records plus small noise on the continuous values; none stays an exact copy."""
    out = x.copy()
    noise = rng.normal(0.0, sd, size=(len(x), 6))
    noise[np.abs(noise) < 0.001] = 0.001  # below the rounding: would round back onto the record
    out[:, :6] = np.clip(np.round(x[:, :6] + noise, 3), 0.0, 1.0)
    return out


def synthetic(kind: str, train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    fresh = population(len(train), rng)
    n = len(train)
    if kind == "copy":
        return train.copy()
    if kind == "10% copies":
        k = max(1, n // 10)
        fresh[:k] = train[rng.choice(n, k, replace=False)]
    elif kind == "noised copies":
        return noised(train, rng)
    elif kind == "overfit model":
        seen = rng.choice(n, max(1, n // 10), replace=False)
        return noised(train[rng.choice(seen, n)], rng)
    elif kind == "at threshold":
        chosen = np.flatnonzero(rng.random(n) < 0.05)
        fresh[: len(chosen)] = noised(train[chosen], rng, sd=0.002)
    elif kind == "duplicated canaries":
        canaries = train[rng.choice(n, max(1, n // 100), replace=False)]
        copies = np.repeat(canaries, 10, axis=0)[:n]
        fresh[: len(copies)] = copies
    elif kind != "independent":
        raise ValueError(f"unknown scenario {kind!r}; expected one of {SCENARIOS}")
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


# The privacy checks only: the fidelity floors are no known-answer rate of these arrays.
PRIVACY = GateThresholds(invalid_records=None, dimwise_r2=None, tstr_deficit=None)
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
    p.add_argument("--sizes", default="300,1000,3000,4000,10000")
    p.add_argument("--reps", type=int, default=40, help="repetitions per cell")
    p.add_argument("--reps-large", type=int, default=20, help="repetitions per cell above 4,000")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--anonymeter", action="store_true", help="add the optional Anonymeter checks")
    args = p.parse_args()
    print(
        f"{'N':>6} {'scenario':>20} {'reps':>5} {'pass':>6} {'incon.':>6} {'fail':>6} {'s/rep':>6}"
    )
    for n in map(int, args.sizes.split(",")):
        reps = args.reps if n <= 4000 else args.reps_large
        cut = int(round(0.8 * n))
        for kind in args.scenarios.split(","):
            start = time.perf_counter()
            got = [gate_status(n, kind, 1000 * n + r, args.anonymeter) for r in range(reps)]
            share = {v: got.count(v) / reps for v in ("pass", "inconclusive", "fail")}
            print(
                f"{n:>6} {kind:>20} {reps:>5} {share['pass']:>6.0%} "
                f"{share['inconclusive']:>6.0%} {share['fail']:>6.0%} "
                f"{(time.perf_counter() - start) / reps:>6.2f}",
                flush=True,
            )
        print(
            f"{n:>6} detectable membership advantage (80% power): "
            f"{detectable_advantage(cut, n - cut):.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
