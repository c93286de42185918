"""Give checkpoints stored before constraints existed the rules of their training records.

    python -m tools.add_constraints checkpoints/ehrdiff-physionet2012 \
        checkpoints/ehrdiff-physionet2012-distilled checkpoints/flexgen-physionet2012 \
        --cohort physionet2012 --input records=../shared/data/physionet2012/set-a.tar.gz \
        --input outcomes=../shared/data/physionet2012/Outcomes-a.txt

The constraints (:func:`core.encoding.constraints.infer_constraints`) are inferred from each
checkpoint's own training split, recomputed from its data card (the cohort must have the
fingerprint the card states), and written into its manifest's config, where generation enforces
them and the Review finds them. Names and aggregates only; the weights and their sha256 are
untouched (``verify_checkpoint`` checks the weights' hash). The manifest's metrics record the
command that added them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from core.checkpoints import MANIFEST_FILE, verify_checkpoint
from core.cli import add_cohort_arguments, load_cohort_from_args
from core.data.cohort import split_cohort
from core.data.records import ehr_table
from core.distributed import command_line
from core.encoding.constraints import infer_constraints

log = logging.getLogger(__name__)

FAMILIES = ("ehrdiff", "flexgen-ehr")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.add_constraints", description=__doc__)
    p.add_argument("checkpoints", type=Path, nargs="+")
    add_cohort_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cohort, _ = load_cohort_from_args(args)
    table = ehr_table(cohort)
    argv = list(sys.argv[1:] if argv is None else argv)
    for folder in args.checkpoints:
        path = folder / MANIFEST_FILE
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest["family"] not in FAMILIES:
            raise SystemExit(f"{folder}: family '{manifest['family']}' has no record table")
        card = manifest["data_card"]
        if cohort.fingerprint() != card["cohort_fingerprint"]:
            raise SystemExit(f"{folder}: the cohort's fingerprint is not its data card's")
        split = split_cohort(cohort, card["split"]["holdout"], card["split"]["seed"])
        constraints = infer_constraints(table.subset(split.train))
        manifest["config"]["constraints"] = constraints.to_json()
        manifest["metrics"]["constraints_added_by"] = command_line("tools.add_constraints", argv, 1)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        verify_checkpoint(folder)  # the weights still match the sha256 the manifest records
        log.info("%s: %d constraints %s", folder, len(constraints), constraints.source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
