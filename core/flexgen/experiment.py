"""Missing-modality experiment of FLEXGEN-EHR: hide modalities at random, train FLEXGEN-EHR and the
two baselines on what is left, score each against the full real data.

    python -m core.flexgen.experiment --cohort physionet2012 \
        --input records=../shared/data/physionet2012/set-a.tar.gz \
        --input outcomes=../shared/data/physionet2012/Outcomes-a.txt \
        --missing-static 0,0.2,0.4 --missing-temporal 0,0.2,0.4 --out flexgen_experiment.md

For each (p, q) pair a share p of the training records loses its static part and a disjoint share
q its series (the holdout is never touched). ``--grid`` runs every combination; by default the
lists are paired element-wise. Fidelity, utility and privacy are computed against the full
(unhidden) training split and the real holdout, as in :mod:`core.flexgen.evaluate`.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from core.cli import add_cohort_arguments, load_cohort_from_args
from core.data.cohort import Cohort, split_cohort
from core.data.records import ehr_table
from core.diffusion.ddpm import DDPMSchedule
from core.errors import ConfigError
from core.flexgen.encoding import modality_presence
from core.flexgen.evaluate import MMD_RECORDS, score_table
from core.flexgen.pipeline import FlexGenSettings
from core.flexgen.train import VARIANTS, FlexGenConfig, train_flexgen
from core.markdown import markdown_table

log = logging.getLogger(__name__)

COLUMNS = {
    "r2_dimension_wise_probability": "R² dim-wise prob. ↑",
    "mmd": "MMD ↓",
    "tstr_auroc": "TSTR AUROC ↑",
    "trtr_auroc": "TRTR AUROC",
    "tstr_aupr": "TSTR AUPR ↑",
    "trtr_aupr": "TRTR AUPR",
    "mia_accuracy": "MIA accuracy (0.5 ideal)",
}


def hide_modalities(cohort: Cohort, p_static: float, q_temporal: float, seed: int) -> Cohort:
    """A copy of ``cohort`` where a random share ``p_static`` of the records that have both parts
    loses its static part and a disjoint share ``q_temporal`` its series."""
    if min(p_static, q_temporal) < 0 or p_static + q_temporal > 1:
        raise ConfigError(
            f"missing shares must be >= 0 and sum to at most 1 (got {p_static}, {q_temporal})"
        )
    has_s, has_t = modality_presence(cohort)
    both = np.flatnonzero(has_s & has_t)
    rng = np.random.default_rng(seed)
    order = rng.permutation(both)
    n_s, n_t = round(p_static * cohort.n_records), round(q_temporal * cohort.n_records)
    if n_s + n_t > len(order):
        raise ConfigError("not enough complete records to hide that many modalities")
    no_static, no_temporal = order[:n_s], order[n_s : n_s + n_t]
    static = cohort.static.copy()
    for col in static.columns:
        static.loc[no_static, col] = np.nan
    values, mask = cohort.temporal.values.copy(), cohort.temporal.mask.copy()
    values[no_temporal], mask[no_temporal] = np.nan, False
    return replace(
        cohort,
        static=static,
        temporal=replace(cohort.temporal, values=values, mask=mask),
        notes=(*cohort.notes, f"hid static of {n_s} and series of {n_t} records (seed {seed})"),
    )


def run(
    cohort: Cohort,
    pairs: list[tuple[float, float]],
    config: FlexGenConfig,
    *,
    variants: tuple[str, ...] = VARIANTS,
    holdout: float = 0.2,
    split_seed: int = 0,
    seed: int = 0,
    on_row: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    split = split_cohort(cohort, holdout, split_seed)
    train_full = cohort.subset(split.train)
    table = ehr_table(cohort)
    train_t, holdout_t = table.subset(split.train), table.subset(split.holdout)
    rows = []
    for p, q in pairs:
        hidden = hide_modalities(train_full, p, q, seed)
        for variant in variants:
            start = time.perf_counter()
            result = train_flexgen(hidden, replace(config, variant=variant, seed=seed))
            synth = result.model.generate(FlexGenSettings(n=len(split.train), seed=seed))
            scores = score_table(train_t, holdout_t, synth.table, seed=seed)
            align = result.alignment.summary() if result.alignment else {}
            rows.append(
                {
                    "missing static": p,
                    "missing temporal": q,
                    "variant": variant,
                    "records used": result.model.training["records"],
                    **scores,
                    "GW solver s": align.get("solver_seconds"),
                    "train s": round(time.perf_counter() - start, 1),
                }
            )
            log.info("p=%.2f q=%.2f %s: %s", p, q, variant, rows[-1])
            if on_row is not None:
                on_row(pd.DataFrame(rows))
    return pd.DataFrame(rows)


def to_markdown(frame: pd.DataFrame) -> str:
    return markdown_table(frame.rename(columns=COLUMNS), {"MMD ↓": "{:.4f}"})


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m core.flexgen.experiment", description=__doc__)
    add_cohort_arguments(p)
    p.add_argument("--missing-static", default="0,0.2,0.4", help="comma-separated shares")
    p.add_argument("--missing-temporal", default="0,0.2,0.4", help="comma-separated shares")
    p.add_argument("--grid", action="store_true", help="every (p, q) combination")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--temporal-kind", default="cnn", choices=("lstm", "cnn"))
    p.add_argument("--vae-epochs", type=int, default=30)
    p.add_argument("--diffusion-iters", type=int, default=6000)
    p.add_argument("--beta-end", type=float, default=0.2, help="last beta (the paper: 1e-2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="markdown table to write (+ .csv)")
    args = p.parse_args(argv)
    ps, qs = _floats(args.missing_static), _floats(args.missing_temporal)
    if args.grid:
        pairs = list(itertools.product(ps, qs))
    elif len(ps) == len(qs):
        pairs = list(zip(ps, qs, strict=True))
    else:
        p.error("--missing-static and --missing-temporal need equal lengths without --grid")
    cohort, _ = load_cohort_from_args(args)
    config = replace(
        FlexGenConfig(),
        temporal_kind=args.temporal_kind,
        vae_epochs=args.vae_epochs,
        diffusion_iters=args.diffusion_iters,
        ddpm=DDPMSchedule(50, 1e-4, args.beta_end),
    )
    command = "python -m core.flexgen.experiment " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )

    def write(frame: pd.DataFrame) -> None:
        args.out.write_text(
            f"Command: `{command}`\n\nMMD on a random {MMD_RECORDS:,} records per set; "
            f"TSTR with a random forest on the real holdout.\n\n{to_markdown(frame)}\n"
        )
        frame.to_csv(args.out.with_suffix(".csv"), index=False)

    frame = run(
        cohort,
        pairs,
        config,
        variants=tuple(v.strip() for v in args.variants.split(",")),
        holdout=args.holdout,
        split_seed=args.split_seed,
        seed=args.seed,
        on_row=write,
    )
    write(frame)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
