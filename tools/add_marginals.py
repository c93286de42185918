"""Give an older min-max checkpoint (EHRDiff or FLEXGEN-EHR) its columns' support and precision.

    python -m tools.add_marginals checkpoints/flexgen-physionet2012 --cohort physionet2012 \
        --input records=../shared/data/physionet2012/set-a.tar.gz \
        --input outcomes=../shared/data/physionet2012/Outcomes-a.txt

The marginals (:mod:`core.encoding.marginals`) are fitted on the checkpoint's own training split,
recomputed from its data card (the cohort must have the fingerprint the card states), and
written into its manifest; the weights and their sha256 are untouched and the model keeps its
min-max space, so it decodes onto each column's support and precision from then on. The
manifest's metrics record the command that added them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from core.checkpoints import MANIFEST_FILE
from core.cli import add_cohort_arguments, load_cohort_from_args
from core.data.cohort import split_cohort
from core.data.records import ehr_table
from core.distributed import command_line
from core.encoding.vectors import VectorEncoding
from core.errors import CheckpointError
from core.flexgen.encoding import FlexGenEncoding

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.add_marginals", description=__doc__)
    p.add_argument("checkpoint", type=Path)
    add_cohort_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    path = args.checkpoint / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    cohort, _ = load_cohort_from_args(args)
    card = manifest["data_card"]
    if cohort.fingerprint() != card["cohort_fingerprint"]:
        raise SystemExit("the cohort's fingerprint is not the one in the checkpoint's data card")
    split = split_cohort(cohort, card["split"]["holdout"], card["split"]["seed"])
    encoding = manifest["config"]["encoding"]
    if manifest["family"] == "ehrdiff":
        fitted = VectorEncoding.fit(ehr_table(cohort).subset(split.train), "scaled")
        manifest["config"]["encoding"] = (
            VectorEncoding.from_json(encoding).with_marginals(fitted).to_json()
        )
    elif manifest["family"] == "flexgen-ehr":
        fitted = FlexGenEncoding.fit(cohort.subset(split.train), "scaled")
        temporal = encoding["temporal"]
        if temporal["lo"] != list(fitted.temporal.lo):
            raise CheckpointError("the series ranges differ from the ones fitted now")
        manifest["config"]["encoding"] = {
            **encoding,
            "static": VectorEncoding.from_json(encoding["static"])
            .with_marginals(fitted.static)
            .to_json(),
            "temporal": {**temporal, "marginals": [m.to_json() for m in fitted.temporal.marginals]},
        }
    else:
        raise SystemExit(f"family '{manifest['family']}' has no numeric encoding to extend")
    argv = list(sys.argv[1:] if argv is None else argv)
    manifest["metrics"]["marginals_added_by"] = command_line("tools.add_marginals", argv, 1)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    log.info("added marginals to %s", args.checkpoint)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
