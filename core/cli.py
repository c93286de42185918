"""Shared command-line helpers: cohort arguments and key=value parsing."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.data.cohort import Cohort
from core.data.formats import NamedInput, load_cohort


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--{what} expects key=value, got '{pair}'")
        out[key.strip()] = value.strip()
    return out


def coerce(value: str) -> object:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if "," in value:
        return tuple(coerce(v) for v in value.split(","))
    return value


def add_cohort_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cohort", required=True, help="cohort format id (see core.data.formats.FORMATS)"
    )
    p.add_argument(
        "--input", action="append", default=[], metavar="SLOT=PATH", help="input file per slot"
    )
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="loader option"
    )
    p.add_argument("--holdout", type=float, default=0.2, help="patient share held out")
    p.add_argument("--split-seed", type=int, default=0)


def load_cohort_from_args(args: argparse.Namespace) -> tuple[Cohort, dict[str, NamedInput]]:
    inputs = {
        k: NamedInput(Path(v).name, Path(v)) for k, v in parse_pairs(args.input, "input").items()
    }
    options = {k: coerce(v) for k, v in parse_pairs(args.option, "option").items()}
    return load_cohort(args.cohort, inputs, options), inputs
