"""Records that obey the cohort's logic (issue #28): how each repair of crossed summaries
distorts the shipped EHRDiff PhysioNet model's records, and the validity of every model.

    python -m benchmarks.validity [--ehrdiff DIR] [--flexgen DIR] [--seeds 0 1 2 3 4] [--n 3200]

The constraints are inferred from the training split (PhysioNet 2012 set-a, holdout 0.2, seed 0;
:func:`core.encoding.constraints.infer_constraints`). EHRDiff samples ``--n`` records per seed
(DPM-Solver++(2M), 16 steps, as the Generate page), decoded once; each repair of
:data:`core.encoding.repair.REPAIRS` then runs on the same decoded table (with the model's
snapping onto each column's support, as its pipeline decodes), beside the table as decoded
without any (how the model shipped before). Per variant, mean over seeds:
- validity: share of records satisfying every inferred constraint;
- mean numeric KS against the training split (the review's metric);
- dimension-wise probability R^2 and TSTR AUROC (random forest, real holdout), both in the
  review's encoding (min-max, fitted on the training split);
- the share of variable-stays (both min and max present) with min == max;
- the largest off-support share of a column (values not on the real support or precision).
Intervals: over seeds (mean +- t * sd / sqrt(seeds)) for KS and R^2; TSTR's is the mean of the
per-seed bootstrap intervals over holdout patients. FLEXGEN-EHR is measured as it generates, with
its stored constraints and with the rules of its column names only (as it shipped before).
``--ehrdiff ""`` or ``--flexgen ""`` skips a model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.marginals import DATA, ROOT, load_split
from core.data.records import EHRTable, ehr_table
from core.ehrdiff.pipeline import GenerationSettings
from core.encoding import constraints as C
from core.encoding import repair as R
from core.encoding.vectors import VectorEncoding
from core.flexgen.pipeline import FlexGenSettings
from core.loading import load_model
from core.metrics import fidelity, utility


def equal_share(table: EHRTable) -> float:
    """Share of variable-stays (min and max present) whose min equals max."""
    frame = table.static
    hits, total = 0, 0
    for group in C.summary_groups(frame.columns).values():
        if "min" in group and "max" in group:
            lo, hi = frame[group["min"]].to_numpy(float), frame[group["max"]].to_numpy(float)
            both = ~np.isnan(lo) & ~np.isnan(hi)
            hits += int(np.isclose(lo[both], hi[both], rtol=1e-6, atol=0).sum())
            total += int(both.sum())
    return hits / max(total, 1)


def measure(
    train: EHRTable,
    holdout: EHRTable,
    synth: EHRTable,
    review_enc: VectorEncoding,
    constraints: C.ConstraintSet,
    seed: int,
) -> dict:
    numeric = [c.name for c in review_enc.columns if c.kind == "numeric"]
    support = {
        c.name: (c.marginal.discrete, c.marginal.decimals) for c in review_enc.columns if c.marginal
    }
    columns = [(c.name, c.kind) for c in review_enc.columns]
    per_column = fidelity.column_fidelity(train.static, synth.static, columns, support).per_feature
    x_tr, x_ho, x_sy = (review_enc.encode(t) for t in (train, holdout, synth))
    rf = utility.tstr(
        (x_tr, train.labels),
        (x_sy, synth.labels),
        (x_ho, holdout.labels),
        classifiers=("random_forest",),
        seed=seed,
    )[0]
    return {
        "validity": float(C.valid_records(synth, constraints).mean()),
        "ks": fidelity.numeric_marginals(train.static, synth.static, numeric).value,
        "r2": fidelity.dimension_wise_probability(x_tr, x_sy).value,
        "tstr": rf.value,
        "tstr_ci": rf.ci,
        "trtr": rf.ideal,
        "equal": equal_share(synth),
        "off_support": float(per_column["off_support"].max()),
    }


def interval(values: list[float]) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def print_rows(title: str, rows: dict[str, list[dict]]) -> None:
    print(f"\n{title}")
    print(
        f"{'variant':<14}{'valid':>7}{'mean KS (95% CI)':>24}{'R^2 (95% CI)':>26}"
        f"{'TSTR RF (95% CI)':>24}{'min==max':>10}{'off-sup':>9}"
    )
    for name, runs in rows.items():
        ks, r2 = interval([r["ks"] for r in runs]), interval([r["r2"] for r in runs])
        tstr = float(np.mean([r["tstr"] for r in runs]))
        lo, hi = (float(np.mean([r["tstr_ci"][i] for r in runs])) for i in range(2))
        print(
            f"{name:<14}{np.mean([r['validity'] for r in runs]):>7.1%}"
            f"{ks[0]:>9.4f} ({ks[1]:.4f}-{ks[2]:.4f})"
            f"{r2[0]:>11.5f} ({r2[1]:.5f}-{r2[2]:.5f})"
            f"{tstr:>9.3f} ({lo:.3f}-{hi:.3f})"
            f"{np.mean([r['equal'] for r in runs]):>10.1%}"
            f"{np.mean([r['off_support'] for r in runs]):>9.3f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ehrdiff", default=str(ROOT / "checkpoints" / "ehrdiff-physionet2012"))
    p.add_argument("--flexgen", default=str(ROOT / "checkpoints" / "flexgen-physionet2012"))
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--n", type=int, default=3200, help="records per seed (the training size)")
    args = p.parse_args()
    if not DATA.exists():
        raise SystemExit(f"PhysioNet 2012 not found at {DATA}")
    if not args.ehrdiff and not args.flexgen:
        raise SystemExit("nothing to measure: give --ehrdiff or --flexgen")
    cohort, split = load_split()
    table = ehr_table(cohort)
    train, holdout = table.subset(split.train), table.subset(split.holdout)
    review_enc = VectorEncoding.fit(train)
    constraints = C.infer_constraints(train)
    print(f"{len(constraints)} constraints {constraints.source}")
    floor = measure(train, holdout, holdout, review_enc, constraints, 0)
    print(
        f"real holdout (800 unseen stays): validity {floor['validity']:.1%}, mean KS "
        f"{floor['ks']:.4f}, R^2 {floor['r2']:.5f}, min==max {floor['equal']:.1%}; "
        f"training split min==max {equal_share(train):.1%}; TRTR AUROC {floor['trtr']:.3f}"
    )

    model = load_model(args.ehrdiff, "cpu") if args.ehrdiff else None
    rows: dict[str, list[dict]] = {}
    for seed in args.seeds if model is not None else ():
        settings = GenerationSettings(n=args.n, seed=seed)
        vectors, labels = model.generate_vectors(settings)
        ids = np.asarray([f"s{i}" for i in range(args.n)], dtype=object)
        decoded = model.encoding.decode(vectors, ids, labels)
        variants = {"as decoded": decoded}
        variants |= {
            r: R.enforce(decoded, constraints, r, snap=model.encoding.snap) for r in R.REPAIRS
        }
        for name, synth in variants.items():
            rows.setdefault(name, []).append(
                measure(train, holdout, synth, review_enc, constraints, seed)
            )
    if rows:
        title = f"EHRDiff {Path(args.ehrdiff).name}, {args.n} records x {len(args.seeds)} seeds"
        print_rows(title, rows)

    if args.flexgen:
        model = load_model(args.flexgen, "cpu")
        stored = model.constraints
        rows = {}
        # Without its stored set the model decodes with the rules of its column names only, as
        # it shipped before (variables charted together were then sampled apart).
        for name, rules in (("names only", None), ("stored", stored)):
            model.constraints = rules
            rows[name] = [
                measure(
                    train,
                    holdout,
                    model.generate(FlexGenSettings(n=args.n, seed=seed)).table,
                    review_enc,
                    constraints,
                    seed,
                )
                for seed in args.seeds
            ]
        print_rows(f"FLEXGEN-EHR {Path(args.flexgen).name}, {args.n} records x seeds", rows)


if __name__ == "__main__":
    main()
