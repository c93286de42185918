"""EHRPD sequence-generation benchmark: patients/s and visits/s of the shipped checkpoint.

    python -m benchmarks.ehrpd_sampling [--n 1000] [--device auto] [--repeats 3]

Each visit is one DDIM run of the next-visit denoiser plus one pass of the history encoder, so
cost grows with the visit cap and the steps per visit; the table shows both, and the ratio of
each setting to the shipped default (25 steps, guidance 1) measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from core.device import describe_device, select_device
from core.ehrpd.pipeline import EHRPDModel, SequenceSettings

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "ehrpd-eicu"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--device", default=None)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    device = select_device(args.device)
    model = EHRPDModel.load(CHECKPOINT, device=device)
    enc = model.encoding
    print(
        f"device: {describe_device(device)}; torch threads {torch.get_num_threads()}; "
        f"{enc.dim} codes, visit cap {enc.max_visits}, N = {args.n:,} patients"
    )
    rows = []
    for steps, guidance in ((25, 1.0), (10, 1.0), (50, 1.0), (25, 2.0)):
        if guidance != 1.0 and model.n_classes == 0:
            continue
        times, visits = [], 0
        for r in range(args.repeats):
            start = time.perf_counter()
            out = model.generate(SequenceSettings(n=args.n, seed=r, steps=steps, guidance=guidance))
            times.append(time.perf_counter() - start)
            visits = out.visits.n_visits
        t = statistics.median(times)
        rows.append((steps, guidance, args.n / t, visits / t, visits / args.n))
    base = rows[0][2]
    print(
        f"{'steps':>5} {'guid.':>5} {'patients/s':>11} {'visits/s':>9} {'visits/pt':>9} {'x default':>9}"
    )
    for steps, guidance, pps, vps, vpp in rows:
        print(
            f"{steps:>5} {guidance:>5g} {pps:>11,.0f} {vps:>9,.0f} {vpp:>9.2f} {pps / base:>9.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
