"""Evaluate DDL-CXR forecasts against the true later image, with patient-level CIs.

Single checkpoint on its own held-out patients:
``python -m core.cxr.evaluate --forecaster checkpoints/ddlcxr-hannover-64 --hannover-root DIR``
Patient-level k-fold cross-validation (trains one model per fold and target; ``core.cxr.crossval``):
``python -m core.cxr.evaluate --folds 5 --vae checkpoints/cxr-vae-64 --hannover-root DIR
--init later=PRETRAINED --init residual=PRETRAINED --work DIR --out TABLE.md``

Every forecast is compared with the true later image at model resolution, per gap bucket (<2 d,
2-5 d, >5 d) and pooled:
- ``carry-forward``: the prior image as the forecast (the clinical default);
- forecast variants: which target the network denoises (the later latent, or its change from the
  prior), where DDIM starts (pure noise, or the prior noised to a horizon-dependent level), DDIM
  eta and thresholding; each with the real EHR window, without EHR (the learned null context) and
  with a **shuffled** window (another patient's labs: the control for "the labs matter");
- ``VAE ceiling``: the true image passed through the VAE (the best any latent forecast can do).
Per pair: SSIM and PSNR of the sample-mean image, L2 of its latent to the true latent, and the
share of saturated pixels. Per set: Frechet and 2-Wasserstein distance between first-sample
latents and true latents, on latents average-pooled to 4 x 4 (a bucket has fewer pairs than the
full latent has dimensions). Intervals: 95% percentile bootstrap over patients.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from core.cxr.data import PairRecord, hannover_pairs, holdout_patients
from core.cxr.diffusion import Anchor
from core.cxr.ehr_window import EHRWindow, window_from_frame
from core.cxr.pipeline import DDLCXRForecaster, ForecastSettings
from core.data.images import read_radiograph
from core.markdown import markdown_table
from core.metrics.bootstrap import cluster_resamples, percentile_ci
from core.metrics.images import frechet_distance, psnr, ssim, wasserstein_distance
from core.progress import ProgressCallback

log = logging.getLogger(__name__)

BUCKETS = (("<2 d", 0.0, 48.0), ("2-5 d", 48.0, 120.0), (">5 d", 120.0, float("inf")))
CARRY, CEILING = "carry-forward", "VAE ceiling"
SATURATED = 0.02  # a pixel within this of black or white counts as saturated


@dataclass(frozen=True)
class Variant:
    """One way of sampling a forecast; ``None`` fields take the model's defaults."""

    name: str
    anchor: Anchor | None = None
    eta: float | None = None
    threshold: bool = True
    ehr: str = "real"  # "real", "none" or "shuffled"
    strength: float | None = None


DEFAULT_VARIANTS = (
    Variant("DDL-CXR"),
    Variant("no-EHR", ehr="none"),
    Variant("shuffled-EHR", ehr="shuffled"),
    Variant("DDL-CXR, eta 0", eta=0.0),
)


def bucket_of(gap_hours: float) -> str:
    return next(name for name, lo, hi in BUCKETS if lo <= gap_hours < hi)


def _pooled(z: torch.Tensor) -> np.ndarray:
    return F.adaptive_avg_pool2d(z, 4).flatten(1).cpu().numpy()


def shuffled_partners(pairs: list[PairRecord]) -> list[int]:
    """For each pair, the index of a pair of another patient (a fixed rotation), or itself when
    every pair is of one patient."""
    out = []
    for i, pair in enumerate(pairs):
        others = [j for j in range(len(pairs)) if pairs[j].patient_id != pair.patient_id]
        out.append(others[i % len(others)] if others else i)
    return out


def saturated_share(images: np.ndarray) -> float:
    return float(np.mean((images <= SATURATED) | (images >= 1.0 - SATURATED)))


def evaluate_pairs(
    model: DDLCXRForecaster,
    pairs: list[PairRecord],
    variants: tuple[Variant, ...] = DEFAULT_VARIANTS,
    *,
    samples: int = 4,
    steps: int = 25,
    seed: int = 0,
    fold: int = 0,
    keys: list[int] | None = None,
    callback: ProgressCallback | None = None,
) -> pd.DataFrame:
    """One row per (pair, method) with per-pair metrics and pooled latents for set distances.

    The seed of pair ``i`` is ``seed + key`` for every variant, so variants differ by method only;
    ``keys`` (default ``0..n-1``) identify the pairs in the rows.
    """
    keys = list(range(len(pairs))) if keys is None else keys
    ae = model.autoencoder
    lo, hi = model.gap_range_hours
    windows = [window_from_frame(p.window, model.vocabulary, "pair") for p in pairs]
    partners = shuffled_partners(pairs)
    rows = []
    for i, pair in enumerate(pairs):
        prior = ae.prepare(read_radiograph(pair.prior).pixels)
        truth = ae.prepare(read_radiograph(pair.later).pixels)
        z_true = ae.encode(truth[None])
        z_prior = ae.encode(prior[None])
        horizon = float(np.clip(pair.gap_hours, lo, hi))
        ceiling = ae.decode(z_true)
        z_ceiling = ae.encode(ceiling)
        # per method: mean image, sample images, first sample's latent, mean image's latent;
        # every latent is of the method's output image, the ceiling's included
        outputs: dict[str, tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]] = {
            CARRY: (prior, prior[None], z_prior, z_prior),
            CEILING: (ceiling[0], ceiling, z_ceiling, z_ceiling),
        }
        for v in variants:
            window: EHRWindow | None = {
                "real": windows[i],
                "none": None,
                "shuffled": windows[partners[i]],
            }[v.ehr]
            settings = ForecastSettings(
                horizon,
                samples,
                steps,
                eta=v.eta,
                seed=seed + keys[i],
                use_ehr=v.ehr != "none",
                anchor=v.anchor,
                strength=v.strength,
                threshold=v.threshold,
            )
            fc = model.forecast(prior, window, settings)
            z_mean = ae.encode(fc.mean[None])
            outputs[v.name] = (fc.mean, fc.samples, ae.encode(fc.samples[:1]), z_mean)
        for method, (image, sample_images, z_first, z_mean) in outputs.items():
            rows.append(
                {
                    "fold": fold,
                    "pair": keys[i],
                    "patient": pair.patient_id,
                    "gap_hours": pair.gap_hours,
                    "bucket": bucket_of(pair.gap_hours),
                    "method": method,
                    "ssim": ssim(image, truth),
                    "psnr": psnr(image, truth),
                    "latent_l2": float((z_mean - z_true).flatten().norm()),
                    "saturated": saturated_share(sample_images),
                    "z": _pooled(z_first)[0],
                    "z_mean": _pooled(z_mean)[0],
                    "z_true": _pooled(z_true)[0],
                    "z_prior": _pooled(z_prior)[0],
                }
            )
        if callback is not None:
            callback(i + 1, len(pairs))
    return pd.DataFrame(rows)


def _fd(z: np.ndarray, z_true: np.ndarray) -> float:
    return frechet_distance(z, z_true) if len(z) >= 3 else float("nan")


def summarise(
    per_pair: pd.DataFrame, n_boot: int = 500, seed: int = 0, fd_boot: int = 200
) -> pd.DataFrame:
    """Per bucket and pooled ("all"), per method: means with patient-bootstrap 95% CIs, and the
    ratios of latent L2 and latent FD to carry-forward's with paired CIs (same resamples)."""
    out = []
    groups = [(name, per_pair[per_pair["bucket"] == name]) for name, _, _ in BUCKETS]
    groups.append(("all", per_pair))
    for bucket, part in groups:
        if part.empty:
            continue
        methods = list(dict.fromkeys(part["method"]))
        carry = part[part["method"] == CARRY].sort_values(["fold", "pair"])
        resamples = cluster_resamples(carry["patient"].to_numpy(), n_boot, seed)
        carry_l2 = carry["latent_l2"].to_numpy()
        carry_z, truth_z = np.stack(carry["z"]), np.stack(carry["z_true"])
        carry_fd = _fd(carry_z, truth_z)
        for method in methods:
            rows = part[part["method"] == method].sort_values(["fold", "pair"])
            z = np.stack(rows["z"])
            record: dict = {
                "gap": bucket,
                "method": method,
                "pairs": len(rows),
                "patients": rows["patient"].nunique(),
            }
            for col, label in (("ssim", "SSIM"), ("psnr", "PSNR dB"), ("latent_l2", "latent L2")):
                values = rows[col].to_numpy()
                record[label] = float(values.mean())
                record[f"{label} CI"] = percentile_ci(lambda r, v=values: v[r].mean(), resamples)
            l2 = rows["latent_l2"].to_numpy()
            record["L2 / carry"] = float(l2.mean() / carry_l2.mean())
            record["L2 / carry CI"] = percentile_ci(
                lambda r, a=l2, c=carry_l2: a[r].mean() / c[r].mean(), resamples
            )
            fd = _fd(z, truth_z)
            record["latent FD"] = fd
            record["latent FD CI"] = percentile_ci(
                lambda r, a=z, t=truth_z: _fd(a[r], t[r]), resamples[:fd_boot]
            )
            record["FD / carry"] = fd / carry_fd if carry_fd > 0 else float("nan")
            record["FD / carry CI"] = percentile_ci(
                lambda r, a=z, c=carry_z, t=truth_z: _fd(a[r], t[r]) / _fd(c[r], t[r]),
                resamples[:fd_boot],
            )
            record["latent W2"] = wasserstein_distance(z, truth_z)
            record["latent W2 CI"] = percentile_ci(
                lambda r, a=z, t=truth_z: wasserstein_distance(a[r], t[r]), resamples[:fd_boot]
            )
            record["saturated %"] = 100.0 * float(rows["saturated"].mean())
            out.append(record)
    return pd.DataFrame(out)


def _with_ci(value: float, ci: tuple[float, float], fmt: str) -> str:
    if not np.isfinite(value):
        return ""
    if not all(np.isfinite(ci)):
        return fmt.format(value)
    return f"{fmt.format(value)} ({fmt.format(ci[0])}-{fmt.format(ci[1])})"


def summary_markdown(table: pd.DataFrame) -> str:
    """The summary as a Markdown table, each figure with its 95% CI in brackets."""
    shown = pd.DataFrame(
        {
            "gap": table["gap"],
            "method": table["method"],
            "pairs (patients)": [
                f"{p} ({q})" for p, q in zip(table["pairs"], table["patients"], strict=True)
            ],
            **{
                label: [
                    _with_ci(v, ci, fmt)
                    for v, ci in zip(table[label], table[f"{label} CI"], strict=True)
                ]
                for label, fmt in (
                    ("SSIM", "{:.3f}"),
                    ("PSNR dB", "{:.2f}"),
                    ("latent L2", "{:.2f}"),
                    ("L2 / carry", "{:.3f}"),
                    ("latent FD", "{:.2f}"),
                    ("FD / carry", "{:.2f}"),
                )
            },
            "latent W2": [
                _with_ci(v, ci, "{:.2f}")
                for v, ci in zip(table["latent W2"], table["latent W2 CI"], strict=True)
            ],
            "saturated %": table["saturated %"].map("{:.2f}".format),
        }
    )
    return markdown_table(shown)


def summary_json(table: pd.DataFrame) -> list[dict]:
    """JSON-safe records of the summary (CIs as two-element lists, NaN as null)."""

    def clean(v):
        if isinstance(v, tuple):
            return [clean(x) for x in v]
        if isinstance(v, float | np.floating):
            return None if not np.isfinite(v) else round(float(v), 4)
        if isinstance(v, np.integer):
            return int(v)
        return v

    return [{k: clean(v) for k, v in row.items()} for row in table.to_dict("records")]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--forecaster", type=Path, default=None, help="evaluate one checkpoint")
    p.add_argument("--folds", type=int, default=0, help="k-fold cross-validation instead")
    p.add_argument("--hannover-root", type=Path, required=True)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the tables as Markdown here")
    p.add_argument("--json", type=Path, default=None, help="write the summary as JSON here")
    args, rest = p.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.folds:
        from core.cxr.crossval import run_crossval  # the CV CLI adds its own options

        return run_crossval(args, rest, argv)
    if args.forecaster is None or rest:
        p.error("give --forecaster DIR, or --folds K with the cross-validation options")
    model = DDLCXRForecaster.load(args.forecaster)
    manifest = model.manifest
    split = manifest.data_card.get("split", {"holdout": 0.2, "seed": 0})
    pairs = hannover_pairs(args.hannover_root)
    held = holdout_patients([q.patient_id for q in pairs], split["holdout"], split["seed"])
    test = [q for q in pairs if q.patient_id in held]
    if not test:
        p.error(f"{args.forecaster.name} was trained on every patient: use --folds")
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
    text = summary_markdown(table)
    log.info("held-out evaluation:\n%s", text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps(summary_json(table), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
