"""Missing-modality experiment of FLEXGEN-EHR: hide modalities at random, impute them with every
alignment method and baseline, train the generator on what is left, score against the full data.

    python -m core.flexgen.experiment --cohort physionet2012 \
        --input records=../shared/data/physionet2012/set-a.tar.gz \
        --input outcomes=../shared/data/physionet2012/Outcomes-a.txt \
        --grid --seeds 0,1,2 --out runs/flexgen-physionet

For each seed and (p, q) cell a share p of the training records loses its static part and a
disjoint share q its series (the holdout is never touched; the split is the same for every seed).
Per cell and seed:

1. stage 1 (both VAEs) of the flexgen variant is fitted once; every method of ``--imputation``
   is fitted on its latents and scored on the held-out records that have both parts
   (:mod:`core.flexgen.imputation`);
2. each variant of ``--variants`` (an alignment method, ``knn`` or ``complete_case``) trains the
   latent diffusion (alignment methods share stage 1), generates as many patients as the training
   split and is scored against the full training split and the real holdout
   (:func:`core.flexgen.evaluate.score_table`).

``--epsilons`` re-runs the paper's method's imputation at other entropic regularisations in the
cell with the most hidden. Results: ``grid.csv``, ``imputation.csv``, ``per_variable.csv`` and
``summary.md`` (means over seeds with t-intervals), rewritten after every cell.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from core.cli import add_cohort_arguments, load_cohort_from_args
from core.data.cohort import Cohort, split_cohort
from core.data.records import EHRTable, ehr_table
from core.device import select_device
from core.diffusion.ddpm import DDPMSchedule
from core.errors import ConfigError
from core.flexgen.alignment import METHODS, PAPER_METHOD, AlignmentConfig
from core.flexgen.encoding import modality_presence
from core.flexgen.evaluate import MMD_RECORDS, score_table
from core.flexgen.imputation import evaluate_imputation
from core.flexgen.missing import missing_part_handling
from core.flexgen.pipeline import FlexGenSettings
from core.flexgen.train import FlexGenConfig, fit_autoencoders, train_flexgen
from core.markdown import markdown_table

log = logging.getLogger(__name__)

SCORES = {
    "r2_dimension_wise_probability": "R² ↑",
    "mmd": "MMD ↓",
    "tstr_auroc": "TSTR AUROC ↑",
    "tstr_aupr": "TSTR AUPR ↑",
    "mia_accuracy": "MIA acc. (0.5)",
}
IMPUTATION_SCORES = {
    "latent_r2": "latent R² ↑",
    "value_r2": "value R² ↑",
    "pair_top1": "pair top-1 ↑",
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
    rng = np.random.default_rng((seed, 0x41DE))  # not the stream of any training step
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


def variant_config(config: FlexGenConfig, variant: str, seed: int) -> FlexGenConfig:
    """An alignment method trains the flexgen variant with it; knn / complete_case as named."""
    cfg = missing_part_handling(config, variant)
    return replace(cfg, seed=seed, alignment=replace(cfg.alignment, seed=seed))


@dataclass(frozen=True, eq=False)
class SplitData:
    """The experiment's fixed split, as cohorts (for training) and as summary tables (scoring)."""

    train: Cohort
    holdout: Cohort
    train_table: EHRTable
    holdout_table: EHRTable

    @classmethod
    def of(cls, cohort: Cohort, holdout: float = 0.2, split_seed: int = 0) -> SplitData:
        split = split_cohort(cohort, holdout, split_seed)
        table = ehr_table(cohort)
        return cls(
            cohort.subset(split.train),
            cohort.subset(split.holdout),
            table.subset(split.train),
            table.subset(split.holdout),
        )


def run_cell(
    cohort: Cohort,
    p: float,
    q: float,
    seed: int,
    config: FlexGenConfig,
    *,
    variants: tuple[str, ...],
    imputation: tuple[str, ...],
    epsilons: tuple[float, ...] = (),
    holdout: float = 0.2,
    split_seed: int = 0,
    data: SplitData | None = None,
) -> tuple[list[dict], list[dict], list[dict]]:
    """Grid rows, imputation rows and per-variable rows of one (p, q, seed) cell; ``data`` is
    the split of ``cohort`` built once for all cells (built here when not given)."""
    device = select_device()
    data = data or SplitData.of(cohort, holdout, split_seed)
    held, train_t, holdout_t = data.holdout, data.train_table, data.holdout_table
    hidden = hide_modalities(data.train, p, q, seed)
    cell = {"missing static": p, "missing temporal": q, "seed": seed}
    start = time.perf_counter()
    base = variant_config(config, PAPER_METHOD, seed)
    ae = fit_autoencoders(hidden, base, device)
    ae_seconds = time.perf_counter() - start
    methods = {m: replace(base.alignment, method=m) for m in imputation}
    for eps in epsilons:
        methods[f"{PAPER_METHOD} eps={eps:g}"] = replace(base.alignment, epsilon=eps)
    imp_rows, per_var = evaluate_imputation(
        ae, hidden, held, methods, knn_k=config.knn_k, seed=seed
    )
    grid_rows = []
    for variant in variants:
        start = time.perf_counter()
        cfg = variant_config(config, variant, seed)
        shared = ae if cfg.variant == "flexgen" else None
        result = train_flexgen(hidden, cfg, device=device, autoencoders=shared)
        synth = result.model.generate(FlexGenSettings(n=data.train.n_records, seed=seed))
        scores = score_table(train_t, holdout_t, synth.table, seed=seed)
        seconds = time.perf_counter() - start + (ae_seconds if shared is not None else 0.0)
        grid_rows.append(
            {
                **cell,
                "variant": variant,
                "records used": result.model.training["records"],
                **scores,
                "train s": round(seconds, 1),
            }
        )
        log.info("p=%.2f q=%.2f seed %d %s: %s", p, q, seed, variant, grid_rows[-1])
    return (
        grid_rows,
        [{**cell, **r} for r in imp_rows],
        [{**cell, **r} for r in per_var],
    )


def mean_ci(values: pd.Series) -> tuple[float, float, float]:
    """Mean and two-sided 95% t-interval over seeds (the interval is empty for one seed)."""
    v = values.dropna().to_numpy(dtype=float)
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, np.nan, np.nan
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def _summarise(frame: pd.DataFrame, keys: list[str], scores: dict[str, str]) -> pd.DataFrame:
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row["seeds"] = group["seed"].nunique()
        for col, title in scores.items():
            if col not in group:
                continue
            m, lo, hi = mean_ci(group[col])
            digits = 4 if col == "mmd" else 3
            failed = "failed" in group and group["failed"].notna().any()
            row[title] = (
                ("diverged" if failed else "")
                if np.isnan(m)
                else f"{m:.{digits}f}"
                + ("" if np.isnan(lo) else f" ({lo:.{digits}f} to {hi:.{digits}f})")
            )
        rows.append(row)
    out = pd.DataFrame(rows)
    for col in ("missing static", "missing temporal"):
        if col in out:
            out[col] = [f"{v:.0%}" for v in out[col]]
    return out


def imputation_table(imputation: pd.DataFrame, cell: tuple[float, float]) -> pd.DataFrame:
    """One cell's imputation scores, a row per method, both directions side by side."""
    at = imputation[
        (imputation["missing static"] == cell[0]) & (imputation["missing temporal"] == cell[1])
    ]
    out = None
    for part, short in (("static", "static ← series"), ("temporal", "series ← static")):
        scores = dict(IMPUTATION_SCORES)
        if part == "static" and "train_pair_top1" in at:  # one coupling serves both directions
            scores["train_pair_top1"] = "coupling top-1, training pairs"
        table = _summarise(at[at["imputed"] == part], ["method"], scores)
        table = table.rename(columns={t: f"{t} ({short})" for t in scores.values()})
        out = table if out is None else out.merge(table.drop(columns="seeds"), on="method")
    return out


def imputation_by_cell(imputation: pd.DataFrame, part: str, score: str) -> pd.DataFrame:
    """Mean over seeds of one score, a row per method and a column per (p, q) cell."""
    at = imputation[imputation["imputed"] == part]
    table = at.pivot_table(
        index="method", columns=["missing static", "missing temporal"], values=score, sort=False
    )
    table.columns = [f"{p:.0%} / {q:.0%}" for p, q in table.columns]
    return table.reset_index()


def summary_markdown(grid: pd.DataFrame, imputation: pd.DataFrame, commands: list[str]) -> str:
    trtr = ", ".join(
        f"{k.upper().replace('_', ' ')} {grid[k].mean():.3f}"
        for k in ("trtr_auroc", "trtr_aupr")
        if len(grid) and k in grid
    )
    parts = [
        "Commands: " + "; ".join(f"`{c}`" for c in commands),
        f"Means over seeds with 95% t-intervals. MMD on a random {MMD_RECORDS:,} records per "
        f"set; TSTR with a random forest on the real holdout ({trtr}).",
    ]
    if len(imputation):
        for part, title in (("static", "static part from the series"),
                            ("temporal", "series from the static part")):  # fmt: skip
            parts += [
                f"## Latent R² imputing the {title}, per cell (static / series hidden), "
                "mean over seeds",
                markdown_table(imputation_by_cell(imputation, part, "latent_r2")),
            ]
        cells = imputation[["missing static", "missing temporal"]].drop_duplicates()
        for cell in cells.itertuples(index=False):
            parts += [
                f"## Imputation, {cell[0]:.0%} static and {cell[1]:.0%} series hidden "
                "(held-out records with both parts; pair chance 1/n = "
                f"{imputation['pair_chance'].iloc[0]:.4f})",
                markdown_table(imputation_table(imputation, tuple(cell))),
            ]
    if len(grid):
        parts += [
            "## Generation grid",
            markdown_table(
                _summarise(grid, ["missing static", "missing temporal", "variant"], SCORES)
            ),
        ]
    return "\n\n".join(parts) + "\n"


def write_results(folder: Path, rows: dict[str, list[dict]], commands: list[str]) -> None:
    frames = {name: pd.DataFrame(r) for name, r in rows.items()}
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / "summary.md").write_text(
        summary_markdown(frames["grid"], frames["imputation"], commands)
    )


def merge(folders: list[Path], out: Path) -> None:
    """One summary over runs of the same experiment split by seed."""
    keys = {
        "grid": ["variant"],
        "imputation": ["method", "imputed"],
        "per_variable": ["method", "imputed", "variable"],
    }
    rows: dict[str, list[dict]] = {}
    for name, key in keys.items():
        frame = pd.concat([pd.read_csv(f / f"{name}.csv") for f in folders], ignore_index=True)
        # A cell run twice (an interrupted run resumed) counts once.
        frame = frame.drop_duplicates(["missing static", "missing temporal", "seed", *key])
        rows[name] = frame.to_dict("records")
    commands = [(f / "command.txt").read_text().strip() for f in folders]
    out.mkdir(parents=True, exist_ok=True)
    write_results(out, rows, commands)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["merge"]:
        m = argparse.ArgumentParser(prog="python -m core.flexgen.experiment merge")
        m.add_argument("folders", nargs="+", type=Path)
        m.add_argument("--out", type=Path, required=True)
        merged = m.parse_args(argv[1:])
        merge(merged.folders, merged.out)
        return 0
    p = argparse.ArgumentParser(prog="python -m core.flexgen.experiment", description=__doc__)
    add_cohort_arguments(p)
    p.add_argument("--missing-static", default="0,0.2,0.4", help="comma-separated shares")
    p.add_argument("--missing-temporal", default="0,0.2,0.4", help="comma-separated shares")
    p.add_argument("--grid", action="store_true", help="every (p, q) combination")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--variants", default=f"{PAPER_METHOD},ridge,knn,complete_case")
    p.add_argument("--imputation", default=",".join(METHODS), help="alignment methods to score")
    p.add_argument("--epsilons", default="", help="extra epsilons for the paper's method")
    p.add_argument("--temporal-kind", default="cnn", choices=("lstm", "cnn"))
    p.add_argument("--vae-epochs", type=int, default=30)
    p.add_argument("--diffusion-iters", type=int, default=6000)
    p.add_argument("--subsample", type=int, default=AlignmentConfig.subsample)
    p.add_argument("--beta-end", type=float, default=0.2, help="last beta (the paper: 1e-2)")
    p.add_argument("--out", type=Path, required=True, help="folder for the tables")
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
        alignment=replace(AlignmentConfig(), subsample=args.subsample),
    )
    for v in _names(args.variants):
        variant_config(config, v, 0)  # refuse unknown names before any training
    command = "python -m core.flexgen.experiment " + shlex.join(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "command.txt").write_text(command + "\n")
    tuned_at = max(pairs, key=sum)
    data = SplitData.of(cohort, args.holdout, args.split_seed)
    grid, imputation, per_variable = [], [], []
    for seed in map(int, _floats(args.seeds)):
        for cell in pairs:
            g, i, v = run_cell(
                cohort,
                *cell,
                seed,
                config,
                variants=_names(args.variants),
                imputation=_names(args.imputation),
                epsilons=tuple(_floats(args.epsilons)) if cell == tuned_at else (),
                data=data,
            )
            grid += g
            imputation += i
            per_variable += v
            rows = {"grid": grid, "imputation": imputation, "per_variable": per_variable}
            write_results(args.out, rows, [command])
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
