"""Evaluate a DDL-CXR forecaster on held-out longitudinal pairs.

``python -m core.cxr.evaluate --forecaster checkpoints/ddlcxr-hannover-64 --hannover-root DIR``

Compared against the true later image at model resolution, per gap bucket (<2 d, 2-5 d, >5 d):
- ``carry-forward``: the prior image as the forecast (the clinical default);
- ``no-EHR``: the same network with the learned null context (prior image and gap only);
- ``DDL-CXR``: prior image, gap and EHR window;
- ``VAE ceiling``: the true image passed through the VAE (the best any latent forecast can do).
Per pair: SSIM and PSNR of the sample-mean image, L2 distance of its latent to the true latent.
Per bucket: Frechet and 2-Wasserstein distance between the set of forecast latents (first
sample of each pair) and the set of true later latents, on latents average-pooled to 4 x 4 (the
full latent has more dimensions than a held-out bucket has pairs).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from core.cxr.data import PairRecord, hannover_pairs, holdout_patients
from core.cxr.ehr_window import window_from_frame
from core.cxr.pipeline import DDLCXRForecaster, ForecastSettings
from core.data.images import read_radiograph
from core.metrics.images import frechet_distance, psnr, ssim, wasserstein_distance
from core.report.markdown import markdown_table

log = logging.getLogger(__name__)

BUCKETS = (("<2 d", 0.0, 48.0), ("2-5 d", 48.0, 120.0), (">5 d", 120.0, float("inf")))
METHODS = ("carry-forward", "no-EHR", "DDL-CXR", "VAE ceiling")


def bucket_of(gap_hours: float) -> str:
    return next(name for name, lo, hi in BUCKETS if lo <= gap_hours < hi)


def _pooled(z: torch.Tensor) -> np.ndarray:
    return F.adaptive_avg_pool2d(z, 4).flatten(1).cpu().numpy()


def evaluate_pairs(
    model: DDLCXRForecaster,
    pairs: list[PairRecord],
    *,
    samples: int = 4,
    steps: int = 25,
    seed: int = 0,
    callback: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per (pair, method) with the per-pair metrics and the latents for set distances."""
    ae = model.autoencoder
    lo, hi = model.gap_range_hours
    rows = []
    for i, pair in enumerate(pairs):
        prior = ae.prepare(read_radiograph(pair.prior).pixels)
        truth = ae.prepare(read_radiograph(pair.later).pixels)
        z_true = ae.encode(truth[None])
        window = window_from_frame(pair.window, model.vocabulary, "pair")
        horizon = float(np.clip(pair.gap_hours, lo, hi))
        outputs: dict[str, tuple[np.ndarray, torch.Tensor]] = {
            "carry-forward": (prior, ae.encode(prior[None])),
            "VAE ceiling": (ae.decode(z_true)[0], z_true),
        }
        for method, use_ehr in (("no-EHR", False), ("DDL-CXR", True)):
            fc = model.forecast(
                prior, window, ForecastSettings(horizon, samples, steps, 1.0, seed + i, use_ehr)
            )
            outputs[method] = (fc.mean, ae.encode(fc.samples[:1]))
        for method in METHODS:
            image, z = outputs[method]
            rows.append(
                {
                    "pair": i,
                    "patient": pair.patient_id,
                    "bucket": bucket_of(pair.gap_hours),
                    "method": method,
                    "ssim": ssim(image, truth),
                    "psnr": psnr(image, truth),
                    "latent_l2": float((ae.encode(image[None]) - z_true).flatten().norm()),
                    "z": _pooled(z)[0],
                    "z_true": _pooled(z_true)[0],
                }
            )
        if callback is not None:
            callback(i + 1, len(pairs))
    return pd.DataFrame(rows)


def summarise(per_pair: pd.DataFrame) -> pd.DataFrame:
    out = []
    groups = [(name, per_pair[per_pair["bucket"] == name]) for name, _, _ in BUCKETS]
    groups.append(("all", per_pair))
    for bucket, part in groups:
        for method in METHODS:
            rows = part[part["method"] == method]
            if rows.empty:
                continue
            z, z_true = np.stack(rows["z"]), np.stack(rows["z_true"])
            enough = len(rows) >= 3
            out.append(
                {
                    "gap": bucket,
                    "method": method,
                    "pairs": len(rows),
                    "SSIM": rows["ssim"].mean(),
                    "PSNR dB": rows["psnr"].mean(),
                    "latent L2": rows["latent_l2"].mean(),
                    "latent FD": frechet_distance(z, z_true) if enough else np.nan,
                    "latent W2": wasserstein_distance(z, z_true),
                }
            )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--forecaster", type=Path, required=True)
    p.add_argument("--hannover-root", type=Path, required=True)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the table as Markdown here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    model, manifest = DDLCXRForecaster.load(args.forecaster)
    split = manifest.data_card.get("split", {"holdout": 0.2, "seed": 0})
    pairs = hannover_pairs(args.hannover_root)
    held = holdout_patients([q.patient_id for q in pairs], split["holdout"], split["seed"])
    test = [q for q in pairs if q.patient_id in held]
    log.info("%d held-out pairs from %d patients", len(test), len(held))
    per_pair = evaluate_pairs(
        model,
        test,
        samples=args.samples,
        steps=args.steps,
        seed=args.seed,
        callback=lambda i, n: log.info("pair %d/%d", i, n),
    )
    table = summarise(per_pair)
    text = markdown_table(table)
    log.info("held-out evaluation:\n%s", text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
