"""``python -m core.audit {shadow,canaries}``: audit a trained model offline and record the
results in its manifest.

    python -m core.audit shadow --model checkpoints/ehrdiff-physionet2012 --cohort physionet2012 \
        --input records=../shared/data/physionet2012/set-a.tar.gz \
        --input outcomes=../shared/data/physionet2012/Outcomes-a.txt \
        --work runs/audit-ehrdiff-shadow --shadows 8 --targets 400

    python -m core.audit canaries --model checkpoints/ehrdiff-physionet2012 --cohort physionet2012 \
        --input ... --work runs/audit-ehrdiff-canaries

The cohort must be the one the model was trained on (its fingerprint is checked) and the split
is the one its manifest records. A run killed part-way resumes from ``--work`` when rerun with
the same arguments. GPU when present (``--device``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from core.audit.recipes import recipe_for
from core.audit.run import (
    AuditWork,
    plan_fingerprint,
    record_in_manifest,
    run_canary_audit,
    run_shadow_audit,
)
from core.checkpoints import verify_checkpoint
from core.cli import load_cohort_from_args
from core.data.cohort import split_cohort
from core.data.visits import VisitCohort
from core.device import select_device
from core.errors import ConfigError, CoreError
from core.loading import load_model

log = logging.getLogger("core.audit")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.audit",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
    )
    sub = p.add_subparsers(dest="audit", required=True)
    for name, help_text in (
        ("shadow", "shadow-model membership attack (LiRA; trains --shadows models)"),
        ("canaries", "one-run canary audit: a lower bound on epsilon (trains one model)"),
    ):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("--model", required=True, type=Path, help="checkpoint folder to audit")
        s.add_argument("--cohort", required=True, help="cohort format id the model was trained on")
        s.add_argument("--input", action="append", default=[], metavar="SLOT=PATH")
        s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
        s.add_argument("--work", required=True, type=Path, help="folder for resumable pieces")
        s.add_argument(
            "--steps", type=int, default=None,
            help="training budget of each retraining (default: the model's own)",
        )  # fmt: skip
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--device", default=None, help="cpu, cuda, ... (default: GPU if present)")
        s.add_argument(
            "--no-record", action="store_true", help="print the results, leave the manifest as is"
        )
        if name == "shadow":
            s.add_argument(
                "--shadows", type=int, default=8, help="shadow models (even, at least 4)"
            )
            s.add_argument(
                "--targets",
                type=int,
                default=400,
                help="records attacked (even: half trained on, half held out)",
            )
        else:
            s.add_argument(
                "--canaries", type=int, default=None, help="held-out records used (default: all)"
            )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        result = _run(args)
    except CoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps({k: v for k, v in result.items() if k not in ("roc_fpr", "roc_tpr")}, indent=2)
    )
    return 0


def _run(args: argparse.Namespace) -> dict:
    if args.steps is not None and args.steps < 1:
        raise ConfigError(
            f"--steps must be at least 1 (or left out: the model's own), got {args.steps}"
        )
    manifest = verify_checkpoint(args.model)
    device = select_device(args.device)
    recipe = recipe_for(args.model, args.steps, device)  # refuses families it cannot retrain
    card = manifest.data_card
    cohort, _ = load_cohort_from_args(args)
    if card.get("cohort_fingerprint") != cohort.fingerprint():
        raise ConfigError(
            f"The cohort given is not the one '{manifest.model_id}' was trained on (fingerprints "
            "differ): an audit needs the model's own training and held-out records. Give the "
            "files and --option values of its training command: "
            f"{manifest.training_command or '(not recorded)'}"
        )
    rule = card.get("split") or {}
    holdout, seed = rule.get("holdout", 0.2), rule.get("seed", 0)
    if isinstance(cohort, VisitCohort):
        split = cohort.split(holdout, seed)
    else:
        split = split_cohort(cohort, holdout, seed)
    parts = {
        "audit": args.audit,
        "model_sha256": manifest.sha256,
        "cohort": manifest.data_card.get("cohort_fingerprint"),
        "steps": recipe.steps,
        "seed": args.seed,
        **({"shadows": args.shadows, "targets": args.targets} if args.audit == "shadow" else {}),
        **({"canaries": args.canaries} if args.audit == "canaries" else {}),
    }
    work = AuditWork(args.work, {"fingerprint": plan_fingerprint(**parts), **parts})
    if args.audit == "shadow":
        audited = load_model(args.model, device)
        result = run_shadow_audit(
            cohort, split, recipe, audited, work,
            shadows=args.shadows, targets=args.targets, seed=args.seed,
        )  # fmt: skip
    else:
        result = run_canary_audit(
            cohort, split, recipe, work, canaries=args.canaries, seed=args.seed
        )
    result["command"] = "python -m core.audit " + " ".join(
        a if " " not in a else repr(a) for a in (argv_of(args))
    )
    result["device"] = str(device)
    if not args.no_record:
        record_in_manifest(args.model, args.audit, result)
        log.info("recorded in %s", args.model / "manifest.json")
    return result


def argv_of(args: argparse.Namespace) -> list[str]:
    """The command line of this audit with file names only (as the data card states them): a
    manifest holds no local paths, and a long path cannot push it past its length guard."""
    out = [args.audit, "--model", Path(args.model).name, "--cohort", args.cohort]
    for slot, path in (v.split("=", 1) for v in args.input if "=" in v):
        out.append(f"--input={slot}={Path(path).name}")
    out += [f"--option={v}" for v in args.option]
    out += ["--work", Path(args.work).name, "--seed", str(args.seed)]
    if args.steps:
        out += ["--steps", str(args.steps)]
    if args.audit == "shadow":
        out += ["--shadows", str(args.shadows), "--targets", str(args.targets)]
    elif args.canaries:
        out += ["--canaries", str(args.canaries)]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
