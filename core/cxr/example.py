"""Build the shipped example (a prior X-ray and an EHR window) from the models, not from a patient.

``python -m core.cxr.example --forecaster checkpoints/ddlcxr-hannover-64 --hannover-root DIR --out assets/cxr_example``

The prior image is the VAE decoding of the mean latent of all training images (an average over
many patients, so no one's image). A forecaster sample from that average was tried first and is
not used: at 700 training steps samples are too noisy to look like a radiograph. Its highest SSIM to any image of the repository is reported, to show it is not a copy. The EHR
window is built from the vocabulary's training medians and IQRs only (aggregates, no record).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core.cxr.data import hannover_pairs, holdout_patients, load_images
from core.cxr.pipeline import DDLCXRForecaster
from core.data.images import to_png_bytes
from core.metrics.images import ssim

log = logging.getLogger(__name__)

# (variable, hours, IQR multiples from the median): a worsening course with rising inflammation
# markers and falling oxygenation, in robust units of the training distribution.
EXAMPLE_COURSE = (
    ("crp", (6, 30, 54), (0.0, 0.6, 1.2)),
    ("ldh", (6, 54), (0.0, 0.8)),
    ("lymphocytes", (6, 54), (0.0, -0.6)),
    ("po2", (6, 30, 54), (0.0, -0.4, -0.8)),
    ("pco2", (6, 54), (0.0, 0.3)),
)


def example_window(model: DDLCXRForecaster) -> pd.DataFrame:
    vocab = model.vocabulary
    rows = []
    for var, hours, shifts in EXAMPLE_COURSE:
        if var not in vocab.variables:
            continue
        i = vocab.variables.index(var)
        for h, k in zip(hours, shifts, strict=True):
            rows.append(
                {
                    "hours": float(h),
                    "variable": var,
                    "value": round(max(vocab.centre[i] + k * vocab.scale[i], 0.0), 2),
                }
            )
    return pd.DataFrame(rows).sort_values("hours", kind="stable")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--forecaster", type=Path, required=True)
    p.add_argument("--hannover-root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    model, manifest = DDLCXRForecaster.load(args.forecaster)
    ae = model.autoencoder
    split = manifest.data_card["split"]
    pairs = hannover_pairs(args.hannover_root)
    held = holdout_patients([q.patient_id for q in pairs], split["holdout"], split["seed"])
    train_paths = sorted(
        {q.prior for q in pairs if q.patient_id not in held}
        | {q.later for q in pairs if q.patient_id not in held}
    )
    images = load_images(train_paths, ae.size, ae.fit) / 255.0
    mean_latent = ae.encode(images).mean(dim=0, keepdim=True)
    average = ae.decode(mean_latent)[0]
    prior = average
    all_paths = sorted((args.hannover_root / "png").glob("*.png"))
    repo = load_images(all_paths, ae.size, ae.fit) / 255.0
    nearest = sorted((ssim(prior, r) for r in repo), reverse=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prior.png").write_bytes(to_png_bytes(prior))
    example_window(model).to_csv(args.out / "ehr_window.csv", index=False)
    provenance = {
        "made_by": f"python -m core.cxr.example {' '.join(argv)}",
        "forecaster_sha256": manifest.sha256,
        "training_images_averaged": len(train_paths),
        "max_ssim_to_any_repository_image": round(nearest[0], 4),
        "median_ssim_to_repository_images": round(float(np.median(nearest)), 4),
    }
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    log.info("wrote %s: %s", args.out, provenance)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
