"""Review from the command line, producing the same report as the Review page.

    python -m core.report --cohort physionet2012 \
        --input records=../shared/data/physionet2012/set-a.tar.gz \
        --input outcomes=../shared/data/physionet2012/Outcomes-a.txt \
        --synthetic ehrdiff=synthetic.csv --baseline --out report.html

    python -m core.report verify MANIFEST [SET] [--public-key PEM]

Sets that pass the gate (or every set, with --override) are released: their manifests are signed
with the server key and recorded in the audit ledger (core/release/settings.py says where).
``verify`` checks a release manifest's hash and signature, that the signing key is the trusted
one (the server key's public half by default) and, given the released file, its sha256; it
exits with status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from core.checkpoints import sha256_file
from core.cli import add_cohort_arguments, load_cohort_from_args, parse_pairs
from core.data.cohort import split_cohort
from core.data.io import read_table
from core.data.records import ehr_table, table_from_frame
from core.encoding.vectors import VectorEncoding
from core.errors import ConfigError
from core.metrics.baselines import independent_marginals
from core.metrics.suite import ReviewKey, ReviewSettings, review, summary_table
from core.release import settings as release_settings
from core.release.gate import GateThresholds, evaluate_gate, release_manifest
from core.release.ledger import Actor
from core.release.publish import STEWARD, publish
from core.release.signing import load_public_key, verify_manifest
from core.report.export import to_csv_bytes
from core.report.review_report import build_html, code_counts, make_context, to_json

log = logging.getLogger("core.report")


def verify(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m core.report verify", description=verify.__doc__)
    p.add_argument("manifest", type=Path, help="the release manifest (JSON)")
    p.add_argument("released", type=Path, nargs="?", help="the released file, to check its hash")
    p.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="trusted Ed25519 public key (PEM); default: the server key's .pub.pem, if present",
    )
    args = p.parse_args(argv)
    try:
        manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
        trusted_path = args.public_key or release_settings.signing_key_path().with_suffix(
            ".pub.pem"
        )
        trusted = load_public_key(trusted_path) if trusted_path.exists() else None
        released = args.released.read_bytes() if args.released else None
    except (OSError, json.JSONDecodeError, ConfigError) as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 1
    result = verify_manifest(manifest, released, trusted)
    for what, ok, detail in result.checks:
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")
    if trusted is None:
        print("note: no trusted public key given or found; the signer's key was not checked")
    print("VERIFIED" if result.ok else "REJECTED")
    return 0 if result.ok else 1


verify.__doc__ = "Check a release manifest's hash and signature, and the released file's hash."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify"]:
        return verify(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m core.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_cohort_arguments(p)
    p.add_argument(
        "--synthetic",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="synthetic CSV/Parquet, repeatable",
    )
    p.add_argument(
        "--baseline", action="store_true", help="also review an independent-marginals baseline"
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="HTML report to write (JSON and CSV are written beside it)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--mmd-subsample",
        type=int,
        default=None,
        help="MMD on this many records per set (default: exact)",
    )
    gate = p.add_argument_group("release gate (defaults and rationale: core/release/gate.py)")
    for name, default in asdict(GateThresholds()).items():
        gate.add_argument(f"--gate-{name.replace('_', '-')}", type=float, default=default)
    gate.add_argument(
        "--override",
        default=None,
        metavar="REASON",
        help="release sets that fail the gate anyway; the reason is recorded in their manifest",
    )
    gate.add_argument(
        "--fail-on-gate", action="store_true", help="exit with status 2 when a set fails"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not args.synthetic and not args.baseline:
        p.error("give at least one --synthetic NAME=PATH or --baseline")

    cohort, _ = load_cohort_from_args(args)
    split = split_cohort(cohort, args.holdout, args.split_seed)
    table = ehr_table(cohort)
    train, holdout = table.subset(split.train), table.subset(split.holdout)
    encoding = VectorEncoding.fit(train)
    settings = ReviewSettings(seed=args.seed, mmd_max_records=args.mmd_subsample)
    synthetic = {}
    for name, path in parse_pairs(args.synthetic, "synthetic").items():
        frame = read_table(Path(path))
        synthetic[name] = table_from_frame(frame, table, Path(path).name)
    if args.baseline:
        synthetic["Independent marginals (baseline)"] = independent_marginals(
            train, len(split.train), args.seed, encoding
        )[0]
    files = parse_pairs(args.synthetic, "synthetic")
    # A file's review is bound to it, the cohort and the split: only then can it be released.
    keys = {
        n: ReviewKey.of(cohort.fingerprint(), split, sha256_file(Path(files[n])), settings)
        for n in files
    }
    reviews = [
        review(name, train, holdout, s, encoding=encoding, settings=settings, key=keys.get(name))
        for name, s in synthetic.items()
    ]
    provenance = {
        n: {"source": f"file {Path(files[n]).name}" if n in files else "baseline"}
        for n in synthetic
    }
    context = make_context(cohort, split, settings, provenance)
    codes = code_counts(train, synthetic)
    thresholds = GateThresholds(**{k: getattr(args, f"gate_{k}") for k in asdict(GateThresholds())})
    verdicts = {rv.name: evaluate_gate(rv, thresholds) for rv in reviews}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(build_html(reviews, context, codes, verdicts), encoding="utf-8")
    args.out.with_suffix(".json").write_text(to_json(reviews, context, verdicts), encoding="utf-8")
    releases = {}
    actor = Actor(f"cli:{getpass.getuser()}", "command line", (STEWARD,))
    for name, verdict in verdicts.items():
        log.info("release gate %s: %s", name, verdict.status.upper())
        if name in files and (verdict.passed or args.override):
            manifest = release_manifest(
                verdict,
                cohort_fingerprint=context.cohort_fingerprint,
                split=context.split,
                provenance=provenance[name],
                review_settings=context.settings,
                synthetic_sha256=sha256_file(Path(files[name])),
                override_reason=args.override,
            )
            releases[name], entry = publish(manifest, actor)
            log.info("released %s: ledger entry %d", name, entry)
    args.out.with_suffix(".release.json").write_text(
        json.dumps(releases, indent=2) + "\n", encoding="utf-8"
    )
    args.out.with_suffix(".csv").write_bytes(to_csv_bytes(summary_table(reviews)))
    with pd.option_context("display.width", 160, "display.max_colwidth", 70):
        print(
            summary_table(reviews).round(4).to_string(index=False)
        )  # the CLI's output is the table
    log.info("wrote %s (+ .json, .csv, .release.json)", args.out)
    if args.fail_on_gate and not all(v.passed for v in verdicts.values()):
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
