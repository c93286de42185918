"""EHRDiff sampling benchmark: Heun-32 (the paper's setting) vs DPM-Solver++(2M), same run, same machine.

    python -m benchmarks.ehrdiff_sampling [--n 10000] [--device auto] [--repeats 3]

1. Speed: records/s at the paper's network size (1,782 dims, units [1024, 384, 384, 384, 1024]);
   weights are random because throughput does not depend on them.
2. Fidelity: R^2 of dimension-wise probability against the training data (the checkpoint's
   stored aggregate) for both samplers on a shipped checkpoint, at several step counts.
Prints a table and the speed-up of the fast solver at the smallest step count whose R^2 is within
0.01 of Heun-32.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from core.device import describe_device, make_generator, select_device
from core.diffusion import karras
from core.diffusion.edm import EDMConfig, EDMDenoiser
from core.ehrdiff.network import EHRDiffMLP, NetworkConfig
from core.ehrdiff.pipeline import EHRDiffModel, GenerationSettings
from core.metrics.fidelity import dimension_wise_probability_from_means

ROOT = Path(__file__).resolve().parents[1]
PAPER = NetworkConfig(dim=1782, units=(1024, 384, 384, 384, 1024))
FAST_STEPS = (6, 8, 10, 12, 16)


def records_per_second(
    denoiser: EDMDenoiser, sampler: str, steps: int, n: int, device: torch.device, repeats: int
) -> float:
    sigmas = karras.karras_sigmas(
        steps, denoiser.edm.sigma_min, denoiser.edm.sigma_max, device=device
    )
    noise = torch.randn(n, denoiser.net.config.dim, generator=make_generator(0)).to(device)
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            karras.sample(sampler, lambda x, s: denoiser(x, s, None), noise, sigmas)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--device", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--checkpoint", nargs="+", default=["ehrdiff-physionet2012", "ehrdiff-eicu-icd9"]
    )
    args = p.parse_args()
    device = select_device(args.device)
    print(f"device: {describe_device(device)}; torch {torch.__version__}; N = {args.n:,}")

    torch.manual_seed(0)
    paper = EDMDenoiser(EHRDiffMLP(PAPER), EDMConfig()).to(device).eval()
    n_params = sum(p.numel() for p in paper.parameters())
    print(
        f"\n1) speed at the paper's size ({PAPER.dim} dims, units {list(PAPER.units)}, {n_params / 1e6:.1f} M parameters)"
    )
    heun_rate = records_per_second(paper, "heun", 32, args.n, device, args.repeats)
    print(f"{'sampler':<12}{'steps':>6}{'evals':>7}{'records/s':>12}{'x Heun-32':>11}")
    print(f"{'heun':<12}{32:>6}{63:>7}{heun_rate:>12,.0f}{1.0:>11.2f}")
    speed = {}
    for steps in FAST_STEPS:
        rate = records_per_second(paper, "dpmpp_2m", steps, args.n, device, args.repeats)
        speed[steps] = rate / heun_rate
        print(f"{'dpmpp_2m':<12}{steps:>6}{steps:>7}{rate:>12,.0f}{speed[steps]:>11.2f}")

    for checkpoint in args.checkpoint:
        fidelity_report(checkpoint, device, speed)


def fidelity_report(checkpoint: str, device: torch.device, speed: dict[int, float]) -> None:
    model = EHRDiffModel.load(ROOT / "checkpoints" / checkpoint, device=device)
    ref = model.reference_means
    n_fid = int(model.manifest.data_card.get("records_train", 2000))
    print(
        f"\n2) fidelity on checkpoint {checkpoint} (R^2 of dimension-wise probability vs its training data; n = {n_fid:,}, mean of 3 seeds)"
    )
    print("   Heun on the paper's EDM schedule; DPM-Solver++(2M) on its default 'tuned' schedule")

    def r2(sampler: str, steps: int) -> float:
        vals = []
        for seed in range(3):
            vec, _ = model.generate_vectors(
                GenerationSettings(n=n_fid, sampler=sampler, steps=steps, seed=seed)
            )
            vals.append(dimension_wise_probability_from_means(ref, vec.mean(axis=0)).value)
        return float(np.mean(vals))

    heun_r2 = r2("heun", 32)
    print(f"{'sampler':<12}{'steps':>6}{'R^2':>8}{'diff':>8}{'x Heun-32 speed':>17}")
    print(f"{'heun':<12}{32:>6}{heun_r2:>8.4f}{0.0:>8.4f}{1.0:>17.2f}")
    chosen = None
    for steps in FAST_STEPS:
        value = r2("dpmpp_2m", steps)
        print(
            f"{'dpmpp_2m':<12}{steps:>6}{value:>8.4f}{value - heun_r2:>+8.4f}{speed[steps]:>17.2f}"
        )
        if chosen is None and value >= heun_r2 - 0.01:
            chosen = steps
    if chosen is None:
        print(f"{checkpoint}: no fast-solver setting reached Heun-32's R^2 within 0.01")
    else:
        verdict = "meets" if speed[chosen] >= 5 else "misses"
        print(
            f"{checkpoint}: DPM-Solver++(2M) {chosen} steps is {speed[chosen]:.1f}x Heun-32's records/s with R^2 within 0.01 ({verdict} the 5x target)"
        )


if __name__ == "__main__":
    main()
