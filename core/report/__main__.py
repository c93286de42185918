"""Review from the command line, producing the same report as the Review page.

    python -m core.report --cohort physionet2012 \
        --input records=../shared/data/physionet2012/set-a.tar.gz \
        --input outcomes=../shared/data/physionet2012/Outcomes-a.txt \
        --synthetic ehrdiff=synthetic.csv --baseline --out report.html

    python -m core.report verify MANIFEST [SET] [--public-key PEM]

    python -m core.report verify-ledger [--url URL] [--public-key PEM ...]

Sets that pass the gate (or every set, with --override) are released: their manifests are signed
with the server key and recorded in the audit ledger (core/release/settings.py says where).
``verify`` checks a release manifest's hash, that a trusted key signed it (``--public-key``; by
default this server's key and the keys its ledger recorded) and, given the released file, its
sha256. Exit status: 0 verified, 1 rejected, 3 signer unknown (intact, but no trusted key was
found: pass the publisher's key, or ``--trust-embedded-key`` to accept the one it carries).
``verify-ledger`` walks the audit ledger's hash chain (every row hash and link, every manifest's
signature by the key id it recorded, key rotations, the key table, the signed head) and prints
each finding. Exit status: 0 intact, 1 tampered, 3 key unknown (nothing found wrong, but no
trusted key: pass the server's public key), 4 the ledger or a key could not be read.
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
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from core.checkpoints import sha256_file
from core.cli import add_cohort_arguments, load_cohort_from_args, parse_pairs
from core.data.cohort import split_cohort
from core.data.io import read_table
from core.data.records import ehr_table, table_from_frame
from core.encoding.vectors import VectorEncoding
from core.errors import ConfigError, CoreError
from core.metrics.baselines import independent_marginals
from core.metrics.suite import ReviewKey, ReviewSettings, review, summary_table
from core.release import settings as release_settings
from core.release.gate import GateThresholds, evaluate_gate, release_manifest
from core.release.ledger import Actor, Ledger
from core.release.publish import STEWARD, publish
from core.release.signing import load_public_key, verify_manifest
from core.report.export import to_csv_bytes
from core.report.review_report import code_counts, make_context, to_json
from core.report.review_sections import ReviewDocument, build_html

log = logging.getLogger("core.report")


SIGNER_UNKNOWN = 3  # exit status: intact, but no trusted key vouches for the signer
UNREADABLE = 4  # verify-ledger: the ledger (or a key) could not be read; nothing was judged


def verify(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m core.report verify", description=verify.__doc__)
    p.add_argument("manifest", type=Path, help="the release manifest (JSON)")
    p.add_argument("released", type=Path, nargs="?", help="the released file, to check its hash")
    p.add_argument(
        "--public-key",
        type=Path,
        action="append",
        default=[],
        help="trusted Ed25519 public key (PEM), repeatable; default: this server's key and "
        "every key its ledger has signed with, where present",
    )
    p.add_argument(
        "--trust-embedded-key",
        action="store_true",
        help="accept the key the manifest carries (proves the manifest is intact, not who "
        "signed it: anyone can sign a forged manifest with their own key)",
    )
    args = p.parse_args(argv)
    try:
        manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ConfigError(f"{args.manifest} does not hold a JSON object")
        trusted = (
            [load_public_key(k) for k in args.public_key] if args.public_key else _local_keys()
        )
        released = args.released.read_bytes() if args.released else None
    except (OSError, json.JSONDecodeError, RecursionError, CoreError) as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 1
    result = verify_manifest(
        manifest, released, trusted, trust_embedded=args.trust_embedded_key and not trusted
    )
    for what, ok, detail in result.checks:
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")
    if result.ok:
        print("VERIFIED")
        return 0
    if result.signer_unknown and all(ok for what, ok, _ in result.checks if what != "signing key"):
        print(
            "SIGNER UNKNOWN: the manifest is intact, but no trusted key says who signed it. "
            "Get the publisher's public key (see trusted_key.published_at in the manifest) and "
            "pass it with --public-key. (--trust-embedded-key only proves the file is intact: "
            "anyone can sign a manifest with a key of their own.)"
        )
        return SIGNER_UNKNOWN
    print("REJECTED")
    return 1


def _local_keys() -> list:
    """This server's public key and the keys its ledger recorded, where they exist (a recipient
    elsewhere has neither and must name the publisher's key)."""
    keys = []
    public = release_settings.signing_key_path().with_suffix(".pub.pem")
    if public.exists():
        keys.append(load_public_key(public))
    url = release_settings.ledger_url()
    local_file = url.startswith("sqlite:///") and Path(url.removeprefix("sqlite:///")).is_file()
    if release_settings.ledger_url_configured() or local_file:
        for kid, pem in Ledger(url).public_keys().items():
            try:
                keys.append(serialization.load_pem_public_key(pem.encode()))
            except (ValueError, UnsupportedAlgorithm):
                log.warning("the ledger's key %s is damaged; not trusted", kid)
    return keys


def verify_ledger(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m core.report verify-ledger",
        description="Walk the audit ledger's hash chain and signed head; print every finding.",
    )
    p.add_argument(
        "--url",
        default=None,
        help="the ledger's URL (default: CSS_LEDGER_URL or CSS_LEDGER_URL_FILE)",
    )
    p.add_argument(
        "--public-key",
        type=Path,
        action="append",
        default=[],
        help="trusted Ed25519 public key (PEM), repeatable (an old key is enough: rotations "
        "recorded in the ledger lead to the newer ones); default: this server's .pub.pem",
    )
    args = p.parse_args(argv)
    try:
        url = args.url or release_settings.ledger_url()
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            raise ConfigError(f"no ledger at {url.removeprefix('sqlite:///')}")  # never made one
        anchors = [load_public_key(k) for k in args.public_key]
        public = release_settings.signing_key_path().with_suffix(".pub.pem")
        if not args.public_key and public.is_file():
            anchors.append(load_public_key(public))
        ledger = Ledger(url)
        report = ledger.verify(anchors)
    except (OSError, CoreError) as exc:
        print(f"cannot verify the ledger: {exc}", file=sys.stderr)
        return UNREADABLE
    print(
        f"ledger {ledger.url}: {report.rows} rows, last row hash {report.last_hash}; "
        f"trusted keys: {', '.join(report.trusted) or 'none'}"
    )
    for finding in report.findings:
        label = "FAIL" if finding.kind == "tampered" else "UNKNOWN KEY"
        print(f"{label} {finding.where}: {finding.message}")
    if report.tampered:
        print(f"TAMPERED: {sum(f.kind == 'tampered' for f in report.findings)} finding(s)")
        return 1
    if not report.ok:
        print("KEY UNKNOWN: the chain holds, but no trusted key says who signed it")
        return SIGNER_UNKNOWN
    print("LEDGER INTACT: every row hash and link, every signature and the signed head hold")
    return 0


verify.__doc__ = (
    "Check a release manifest's hash, that a trusted key signed it, and the released file's hash."
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify"]:
        return verify(argv[1:])
    if argv[:1] == ["verify-ledger"]:
        return verify_ledger(argv[1:])
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
    args.out.write_text(
        build_html(ReviewDocument(reviews, context, verdicts, codes)), encoding="utf-8"
    )
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
