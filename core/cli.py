"""Shared command-line helpers: cohort arguments, key=value parsing, and the end of every
training command (data card, run facts, save, log)."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from core.checkpoints import Manifest, claim
from core.data.cohort import Cohort, CohortOrigin, CohortSplit
from core.data.formats import FORMATS, NamedInput, load_cohort
from core.errors import ConfigError, CoreError

log = logging.getLogger(__name__)


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
    add_split_arguments(p)


def add_split_arguments(p: argparse.ArgumentParser) -> None:
    """The patient-level train/holdout split (``split_card`` states it)."""
    p.add_argument("--holdout", type=float, default=0.2, help="patient share held out")
    p.add_argument("--split-seed", type=int, default=0)


def add_run_arguments(
    p: argparse.ArgumentParser, *, steps: int, batch_size: int, lr: float
) -> None:
    """The options of every training command: output, budget, seed, device."""
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="auto | cpu | cuda | mps")


def add_training_arguments(
    p: argparse.ArgumentParser, *, steps: int, batch_size: int, lr: float
) -> None:
    """The options of a command training on a cohort: :func:`add_run_arguments`, the model id
    and label use."""
    add_run_arguments(p, steps=steps, batch_size=batch_size, lr=lr)
    p.add_argument("--model-id", default=None)
    p.add_argument("--unconditional", action="store_true", help="ignore the label")


def load_cohort_from_args(args: argparse.Namespace) -> tuple[Cohort, dict[str, NamedInput]]:
    inputs = {
        k: NamedInput(Path(v).name, Path(v)) for k, v in parse_pairs(args.input, "input").items()
    }
    options = {k: coerce(v) for k, v in parse_pairs(args.option, "option").items()}
    return load_cohort(args.cohort, inputs, options), inputs


def claim_output(out: Path) -> AbstractContextManager:
    """The ``--out`` folder claimed for this training until the command ends, so a second
    training into the same folder is refused at its start instead of silently replacing (or
    being replaced by) this one. Only rank 0 of a ``torchrun`` claims: it alone writes. The
    claim is an OS file lock, released when the process ends however it ends."""
    if int(os.environ.get("RANK", "0")) != 0:
        return nullcontext()
    held = claim(Path(out))
    try:
        held.__enter__()
    except CoreError as exc:
        raise SystemExit(f"error: --out {out}: {exc}") from None
    return held


# --- the end of every training command ------------------------------------------------------------
def split_card(args: argparse.Namespace) -> dict:
    return {"holdout": args.holdout, "seed": args.split_seed, "patient_level": True}


def cohort_data_card(
    args: argparse.Namespace, cohort: Cohort, inputs: dict[str, NamedInput], split: CohortSplit
) -> dict:
    """What a checkpoint states about the cohort it was trained on: the format's card (source,
    licence), file names, fingerprint, split sizes and rule. Aggregates only, no records."""
    return dict(FORMATS[args.cohort].data_card) | {
        "input_files": sorted(p.name for p in inputs.values()),
        "cohort_fingerprint": cohort.fingerprint(),
        "records_train": int(len(split.train)),
        "records_holdout": int(len(split.holdout)),
        "split": split_card(args),
    }


def export_trained(
    save: Callable[..., Manifest],
    out: Path,
    *,
    data_card: dict,
    command: str,
    metrics: dict,
    seconds: float,
    world: int = 1,
    device: object = "cpu",
) -> Manifest:
    """Write a trained model with its card: ``save(out, data_card=..., training_command=...,
    metrics=...)`` gets the metrics plus how long, on what and on how many processes it ran."""
    metrics = metrics | {
        "train_seconds": round(seconds, 1),
        "processes": world,
        "device": str(device),
    }
    manifest = save(out, data_card=data_card, training_command=command, metrics=metrics)
    log.info("wrote %s (sha256 %s): %s", out, manifest.sha256[:12], metrics)
    return manifest


# --- the command a training in the app stands for ---------------------------------------------------
def _flag_text(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(_flag_text(v) for v in value)
    return str(value)


def flags_to_argv(parser: argparse.ArgumentParser, flags: dict[str, object]) -> list[str]:
    """The arguments of ``parser`` that set ``flags`` (argparse dests -> values): the inverse of
    parsing. A value equal to its default is left out; an unknown dest is a ConfigError (a
    renamed option must not silently drop a setting from a model card)."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    argv: list[str] = []
    for dest, value in flags.items():
        action = actions.get(dest)
        if action is None:
            raise ConfigError(f"{parser.prog} has no option for '{dest}'.")
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # store_true / store_false
            if value == action.const:
                argv.append(flag)
        elif isinstance(action.default, list):  # append: one flag per value
            for v in value:
                argv += [flag, _flag_text(v)]
        elif value is not None and (action.required or value != action.default):
            argv += [flag, _flag_text(value)]
    return argv


def cohort_flags(origin: CohortOrigin | None, split: CohortSplit) -> tuple[dict, list[str]]:
    """``add_cohort_arguments`` flags naming where a cohort came from (format, file names, loader
    options) and its split; plus notes on what no flag can state (an option that is a mapping,
    such as the column types chosen in the page, is named, not spelled out)."""
    flags: dict[str, object] = {"holdout": split.holdout_fraction, "split_seed": split.seed}
    notes: list[str] = []
    if origin is None:
        notes.append("cohort not loaded from files")
        return {"cohort": "?"} | flags, notes
    options, unstated = [], []
    for key, value in origin.options:
        if isinstance(value, dict):
            if value:
                unstated.append(f"{key} ({len(value)} set in the page)")
        elif value is not None:
            options.append(f"{key}={_flag_text(value)}")
    if unstated:
        notes.append("loader options without a flag: " + ", ".join(unstated))
    files = [f"{slot}={name}" for slot, name in origin.files]
    return {"cohort": origin.format_id, "input": files, "option": options} | flags, notes


@dataclass(frozen=True)
class EquivalentCommand:
    """A training module's command line for one config: ``flags`` (argparse dests -> values of
    ``parser``) rebuild the config through the module's ``config_from_args``."""

    module: str  # "core.ehrdiff.train"
    parser: argparse.ArgumentParser
    flags: dict[str, object] = field(default_factory=dict)

    def render(
        self,
        cohort: Cohort | object,
        split: CohortSplit,
        out: str | Path,
        *,
        where: str = "trained in the Generate page",
        notes: tuple[str, ...] = (),
    ) -> str:
        """``python -m MODULE --cohort ... --out OUT FLAGS  # where, on cohort sha256 ...``: what
        a model card states instead of the data; names, counts and hashes only."""
        data, data_notes = cohort_flags(getattr(cohort, "origin", None), split)
        argv = flags_to_argv(self.parser, data | {"out": str(out)} | self.flags)
        facts = [
            f"{where} on cohort sha256 {cohort.fingerprint()}",
            f"{len(split.train):,} train / {len(split.holdout):,} holdout",
            *data_notes,
            *notes,
        ]
        return f"python -m {self.module} {shlex.join(argv)}  # " + "; ".join(facts)
