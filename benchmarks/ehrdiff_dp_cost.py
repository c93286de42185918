"""What DP-SGD costs EHRDiff training per step, against non-private training, in one run.

    OMP_NUM_THREADS=1 python -m benchmarks.ehrdiff_dp_cost [--steps 20] [--rounds 3]

The shipped PhysioNet 2012 model's settings (units 512,256,256,512, batch 256, its training
split of set-a) on this machine's CPU; rounds alternate non-private and private training of
``--steps`` steps each, so load from other work falls on both. A step's time is the median gap
between progress reports (set-up, the accountant's noise search and the EMA copy excluded).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from core.data.cohort import split_cohort
from core.data.formats import NamedInput, load_cohort
from core.data.records import ehr_table
from core.ehrdiff.dp import DPConfig
from core.ehrdiff.train import TrainConfig, train_ehrdiff
from core.encoding.vectors import VectorEncoding

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet2012"


def step_seconds(table, config, encoding, patient_ids) -> float:
    stamps: list[float] = []
    train_ehrdiff(
        table,
        config,
        device="cpu",
        encoding=encoding,
        patient_ids=patient_ids,
        callback=lambda step, total, loss: stamps.append(time.perf_counter()),
    )
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:], strict=False))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epsilon", type=float, default=4.0)
    args = p.parse_args()
    files = {
        "records": NamedInput("set-a.tar.gz", DATA / "set-a.tar.gz"),
        "outcomes": NamedInput("Outcomes-a.txt", DATA / "Outcomes-a.txt"),
    }
    cohort = load_cohort("physionet2012", files, {})
    split = split_cohort(cohort, 0.2, 0)
    table = ehr_table(cohort).subset(split.train)
    ids = cohort.patient_ids[split.train]
    print(f"{table.n_records} training records of {len(set(ids.tolist()))} patients")
    encoding = VectorEncoding.fit(table, "normal")
    plain = TrainConfig(steps=args.steps, ema_rampup=0.0)
    private = TrainConfig(steps=args.steps, ema_rampup=0.0, dp=DPConfig(args.epsilon))
    times: dict[str, list[float]] = {"plain": [], "dp": []}
    for r in range(args.rounds):
        times["plain"].append(step_seconds(table, plain, encoding, ids))
        times["dp"].append(step_seconds(table, private, encoding, ids))
        print(f"round {r}: plain {times['plain'][-1]:.4f} s/step, dp {times['dp'][-1]:.4f} s/step")
    a, b = statistics.median(times["plain"]), statistics.median(times["dp"])
    print(
        f"torch threads {torch.get_num_threads()}; median s/step plain {a:.4f}, dp {b:.4f}; "
        f"dp / plain = {b / a:.2f}x"
    )


if __name__ == "__main__":
    main()
