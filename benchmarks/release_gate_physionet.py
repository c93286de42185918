"""The release gate on real records (issue #30): PhysioNet 2012 set-a and the shipped EHRDiff.

    python -m benchmarks.release_gate_physionet [--data DIR] [--model DIR] [--splits 10]
        [--n 3200] [--seed 0] [--independent-splits 10] [--skip-model]

There is no PhysioNet cohort here outside set-a, so the "cannot leak" reference is built from the
800 stays of the model's own holdout (set-a, holdout 0.2, seed 0; the model never saw them):
each repetition splits them 80/20 at random into a pseudo-cohort (640 "training", 160 "holdout"
stays) and gates the ``--n`` synthetic stays of the shipped model against it. No pseudo-member
can leak, so every verdict but pass is the gate's error or its lack of power at this size.

A larger "cannot leak" reference with real records' geometry, no model involved: each of
``--independent-splits`` repetitions halves set-a's 4,000 stays at random; one half is the cohort
(1,600 training / 400 holdout stays), the other half, 2,000 real stays of the same population
that are no one's copy, is the "synthetic" set.

Then the model on its own split (3,200 training / 800 holdout stays): the full review of its
synthetic set and of the independent-marginals baseline of the same size, with the gate's two
groups (privacy and the fidelity floors at their defaults). Prints aggregates only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.marginals import DATA
from core.data.cohort import split_cohort
from core.data.physionet2012 import load_physionet2012
from core.data.records import EHRTable, ehr_table
from core.ehrdiff.pipeline import GenerationSettings
from core.encoding.vectors import VectorEncoding
from core.loading import load_model
from core.metrics.baselines import independent_marginals
from core.metrics.ids import MetricId
from core.metrics.specs import METRICS, ReviewInputs
from core.metrics.suite import Review, ReviewSettings, review
from core.release.gate import (
    FLOORS,
    PRIVACY,
    GateThresholds,
    GateVerdict,
    detectable_text,
    evaluate_gate,
)

PRIVACY_SPECS = (MetricId.MIA, MetricId.DCR, MetricId.EXACT_COPIES, MetricId.ATTRIBUTE_INFERENCE)
PRIVACY_ONLY = GateThresholds(invalid_records=None, dimwise_r2=None, tstr_deficit=None)


def privacy_review(train: EHRTable, holdout: EHRTable, synth: EHRTable, seed: int) -> Review:
    """The four default privacy checks' metrics, in the review's encoding fitted on ``train``."""
    enc = VectorEncoding.fit(train)
    inputs = ReviewInputs(
        train,
        holdout,
        synth,
        enc,
        enc.encode(train),
        enc.encode(holdout),
        enc.encode(synth),
        seed,
        0,
        None,
    )
    results = []
    for spec_id in PRIVACY_SPECS:
        out = METRICS.get(spec_id).compute(inputs)
        results.extend(out if isinstance(out, list) else [out])
    return Review("pseudo", results, {}, "", synth.n_records, None)


def describe(verdict: GateVerdict) -> str:
    return "; ".join(
        f"{c.name}: {c.value:.4f} [{c.ci[0]:.4f}, {c.ci[1]:.4f}] {c.verdict}"
        if c.ci is not None
        else f"{c.name}: {c.verdict}"
        for c in verdict.checks
    )


def gate_halves(table: EHRTable, order: np.ndarray, r: int) -> GateVerdict:
    """One half of the stays as the cohort (80/20), the other half as the "synthetic" set."""
    half = len(order) // 2
    cohort, other = order[:half], order[half:]
    cut = int(round(0.8 * half))
    verdict = evaluate_gate(
        privacy_review(
            table.subset(np.sort(cohort[:cut])),
            table.subset(np.sort(cohort[cut:])),
            table.subset(np.sort(other)),
            r,
        ),
        PRIVACY_ONLY,
    )
    print(f"split {r}: {verdict.status.upper():<12} {describe(verdict)}", flush=True)
    return verdict


def tally(verdicts: list[GateVerdict]) -> None:
    counts = [sum(v.status == s for v in verdicts) for s in ("pass", "inconclusive", "fail")]
    print("pass / inconclusive / fail: {} / {} / {}".format(*counts))
    print(detectable_text(verdicts[-1].detectable), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=DATA, help="folder with set-a.tar.gz")
    p.add_argument("--model", type=Path, default=Path("checkpoints/ehrdiff-physionet2012"))
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--n", type=int, default=3200, help="synthetic stays")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--independent-splits", type=int, default=10)
    p.add_argument("--skip-model", action="store_true", help="only the set-a halves")
    args = p.parse_args()
    start = time.perf_counter()
    cohort = load_physionet2012(args.data / "set-a.tar.gz", args.data / "Outcomes-a.txt")
    split = split_cohort(cohort, 0.2, 0)
    table = ehr_table(cohort)
    train, holdout = table.subset(split.train), table.subset(split.holdout)
    rng = np.random.default_rng(args.seed)
    if args.independent_splits:
        print(f"Cannot leak, no model: {args.independent_splits} random halves of set-a")
        tally(
            [
                gate_halves(table, rng.permutation(table.n_records), r)
                for r in range(args.independent_splits)
            ]
        )
    if args.skip_model:
        return 0
    model = load_model(args.model, "cpu")
    synth = model.generate(
        GenerationSettings(n=args.n, sampler="dpmpp_2m", steps=16, seed=args.seed)
    ).table
    print(f"loaded and generated {args.n} stays in {time.perf_counter() - start:.0f} s")

    print(
        f"\nCannot leak: {args.splits} random 80/20 splits of the {holdout.n_records} unseen stays"
    )
    verdicts = []
    for r in range(args.splits):
        order = rng.permutation(holdout.n_records)
        cut = int(round(0.8 * len(order)))
        pseudo_train = holdout.subset(np.sort(order[:cut]))
        pseudo_holdout = holdout.subset(np.sort(order[cut:]))
        verdict = evaluate_gate(
            privacy_review(pseudo_train, pseudo_holdout, synth, r), PRIVACY_ONLY
        )
        print(f"split {r}: {verdict.status.upper():<12} {describe(verdict)}", flush=True)
        verdicts.append(verdict)
    tally(verdicts)

    print(f"\nThe model on its own split ({train.n_records} / {holdout.n_records} stays)")
    enc = VectorEncoding.fit(train)
    baseline = independent_marginals(train, args.n, args.seed, enc)[0]
    settings = ReviewSettings(seed=args.seed)
    for name, s in (("EHRDiff", synth), ("independent marginals", baseline)):
        verdict = evaluate_gate(review(name, train, holdout, s, encoding=enc, settings=settings))
        groups = ", ".join(f"{g} {verdict.group_status(g)}" for g in (PRIVACY, FLOORS))
        print(f"{name}: {verdict.status.upper()} ({groups})")
        print(f"  {describe(verdict)}", flush=True)
    print(detectable_text(verdict.detectable))
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
