"""Build the shipped example: one real prior/later radiograph pair and the labs in between.

``python -m core.cxr.example --hannover-root DIR --out assets/cxr_example``

The pair comes from the Hannover Medical School COVID-19 image repository (CC BY 3.0; the
attribution goes with the files, onto the page and into every downloaded PNG). It is picked by
a fixed rule on metadata (``core.cxr.data.example_pair``), not by how good the forecast looks,
and the shipped forecaster is trained with ``--leave-out-example``, so the example forecast is
one for a patient the model has never seen. Only pixels (letterboxed to 256 px), the labs as
hours since the prior image and the gap are written: no patient or image identifiers, no dates.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from core.cxr.data import DATASET_CARDS, example_pair, hannover_pairs
from core.data.images import fit_square, read_radiograph, to_png_bytes

log = logging.getLogger(__name__)

EXAMPLE_SIZE = 256
ATTRIBUTION = (
    "Images: Winther HB et al., COVID-19 image repository, Hannover Medical School, "
    "DOI 10.6084/m9.figshare.12275009, CC BY 3.0 (resized)"
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hannover-root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pair = example_pair(hannover_pairs(args.hannover_root))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, path in (("prior.png", pair.prior), ("later.png", pair.later)):
        pixels = fit_square(read_radiograph(path).pixels, EXAMPLE_SIZE, "pad")
        (args.out / name).write_bytes(to_png_bytes(pixels))
    pair.window.to_csv(args.out / "ehr_window.csv", index=False)
    provenance = {
        "made_by": f"python -m core.cxr.example {' '.join(argv)}",
        "dataset": DATASET_CARDS["cxr-hannover"],
        "attribution": ATTRIBUTION,
        "rule": "core.cxr.data.example_pair: among gaps of 2 to 5 days, the most lab observations",
        "gap_hours": pair.gap_hours,
        "lab_observations": len(pair.window),
        "image_size_px": EXAMPLE_SIZE,
        "in_training_of_shipped_forecaster": False,
    }
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    log.info("wrote %s: gap %.0f h, %d lab values", args.out, pair.gap_hours, len(pair.window))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
