"""DDL-CXR forecast benchmark on the shipped checkpoint and example inputs.

    python -m benchmarks.cxr_forecast [--device auto] [--repeats 5] [--steps 25]

1. Latency of one forecast of 4 samples (the page's default) at the shipped resolution with the
   shipped sampler (its manifest defaults): median over repeats after one warm-up; the target on
   a 2-core CPU is under 2 s. The original pure-noise sampler is timed in the same run as the
   baseline.
2. Where it goes: the same forecast split into VAE encode, DDIM (UNet) and VAE decode.
3. Throughput in samples/s at batch 4, 16 and (on a GPU) 64, each relative to batch 4.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from core.cxr.ehr_window import read_ehr_window
from core.cxr.pipeline import DDLCXRForecaster, ForecastSettings
from core.data.images import read_radiograph
from core.device import describe_device, select_device

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "ddlcxr-hannover-64"
EXAMPLE = ROOT / "assets" / "cxr_example"
TARGET_SECONDS = 2.0


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=25)
    args = p.parse_args()
    device = select_device(args.device)
    model = DDLCXRForecaster.load(CHECKPOINT, device=device)
    prior = read_radiograph(EXAMPLE / "prior.png").pixels
    window = read_ehr_window(EXAMPLE / "ehr_window.csv", model.vocabulary)
    print(f"device: {describe_device(device)}; torch threads {torch.get_num_threads()}")
    sampler = model.sampler
    print(
        f"resolution {model.autoencoder.size} px, latent {model.autoencoder.vae.cfg.latent_size} px, "
        f"{args.steps} DDIM steps; shipped sampler: start from {sampler.anchor}, eta {sampler.eta:g}, "
        f"thresholding {'on' if sampler.x0_bound else 'off'}"
    )

    def forecast(n: int, anchor: str | None = None) -> None:
        model.forecast(prior, window, ForecastSettings(72.0, n, args.steps, anchor=anchor))

    latency = timed(lambda: forecast(4), args.repeats)
    verdict = "meets" if latency < TARGET_SECONDS else "misses"
    print(
        f"forecast of 4 samples: median {latency:.3f} s over {args.repeats} runs ({verdict} the {TARGET_SECONDS:g} s target; {latency / TARGET_SECONDS:.2f}x of it)"
    )
    noise = timed(lambda: forecast(4, "noise"), args.repeats)
    print(f"  baseline, pure-noise start: median {noise:.3f} s ({latency / noise:.2f}x of it)")

    ae = model.autoencoder
    img = ae.prepare(prior)[None]
    z = ae.encode(img).repeat(4, 1, 1, 1)
    enc = timed(lambda: ae.encode(img), args.repeats)
    dec = timed(lambda: ae.decode(z), args.repeats)
    print(
        f"  VAE encode {enc * 1e3:.1f} ms, VAE decode (4) {dec * 1e3:.1f} ms, DDIM ~{(latency - enc - dec):.3f} s"
    )

    batches = (4, 16, 64) if device.type == "cuda" else (4, 16)
    base = None
    for n in batches:
        sec = timed(lambda n=n: forecast(n), max(1, args.repeats // 2))
        rate = n / sec
        base = base or rate
        print(f"batch {n:3d}: {rate:7.1f} samples/s ({rate / base:.2f}x batch 4)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
