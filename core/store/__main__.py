"""The model store from a terminal: what the Models page does.

    python -m core.store list
    python -m core.store verify NAME
    python -m core.store export NAME OUT.zip
    python -m core.store import FILE.zip [--name NAME]
    python -m core.store rename NAME NEW_NAME
    python -m core.store delete NAME --yes
    python -m core.store generate NAME --n N [--seed S] --out FILE.parquet

``--root DIR`` (before the command) overrides ``CSS_MODEL_ROOT``. A model trained by a training
command with ``--out "$CSS_MODEL_ROOT/NAME"`` is in the store as it is written. ``generate``
samples a stored generator with its family's default settings and writes the record table
(one row per record or patient) as Parquet, which ``python -m core.report --synthetic`` reviews.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import CoreError
from core.loading import GENERATOR_FAMILIES, LOADERS, SETTINGS
from core.store import ModelStore


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m core.store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", type=Path, default=None, help="the store's folder")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every stored model, verified")
    sub.add_parser("verify", help="check one model's hash").add_argument("name")
    ex = sub.add_parser("export", help="one model as a .zip")
    ex.add_argument("name")
    ex.add_argument("out", type=Path)
    im = sub.add_parser("import", help="a .zip made by export or the Models page")
    im.add_argument("file", type=Path)
    im.add_argument("--name", default=None)
    rn = sub.add_parser("rename")
    rn.add_argument("name")
    rn.add_argument("new_name")
    rm = sub.add_parser("delete")
    rm.add_argument("name")
    rm.add_argument("--yes", action="store_true", help="really delete")
    gen = sub.add_parser("generate", help="sample a stored generator into a Parquet file")
    gen.add_argument("name")
    gen.add_argument("--n", type=int, required=True, help="records (or patients) to generate")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    store = ModelStore(args.root)
    try:
        if args.command == "list":
            models = store.list()
            print(f"{len(models)} model(s) in {store.root}")
            for m in models:
                family = m.family or "?"
                state = "verified" if m.ok else f"BROKEN: {m.detail}"
                print(f"{m.name:<40} {family:<14} {m.size_bytes / 1e6:>8.1f} MB  {state}")
                if m.note:
                    print(f"    {m.note}")
        elif args.command == "verify":
            m = store.get(args.name)
            print(f"{m.name}: {'verified, sha256 ' + m.manifest.sha256 if m.ok else m.detail}")
            return 0 if m.ok else 1
        elif args.command == "export":
            args.out.write_bytes(store.export_zip(args.name))
            print(f"wrote {args.out}")
        elif args.command == "import":
            m = store.import_zip(args.file.read_bytes(), set(LOADERS), args.name)
            print(f"imported {m.name} ({m.family}), verified")
        elif args.command == "rename":
            print(f"renamed to {store.rename(args.name, args.new_name).name}")
        elif args.command == "delete":
            if not args.yes:
                print("deleting needs --yes", file=sys.stderr)
                return 2
            store.delete(args.name)
            print(f"deleted {args.name}")
        elif args.command == "generate":
            m = store.get(args.name)
            if not m.ok or m.family not in GENERATOR_FAMILIES:
                print(
                    f"error: {args.name} is not a verified generator ({m.detail})", file=sys.stderr
                )
                return 1
            model = LOADERS[m.family](m.folder, device="cpu")
            synth = model.generate(SETTINGS[m.family](n=args.n, seed=args.seed))
            synth.table.to_frame().to_parquet(args.out, index=False)
            print(f"wrote {synth.table.n_records:,} records from {m.name} to {args.out}")
    except (CoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
