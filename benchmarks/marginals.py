"""Per-column marginals of EHRDiff and FLEXGEN-EHR records against their training split (issue #15).

    python -m benchmarks.marginals [--ehrdiff DIR ...] [--flexgen DIR ...] [--seeds 0 1 2]

Every model generates as many records as its training split (PhysioNet 2012 set-a, the project's
patient-level split: holdout 0.2, seed 0). Reported per model and decoding variant, as the mean
over seeds:
- mean numeric KS, the worst column's KS (or total variation) and how many columns exceed 0.10;
- the largest off-support share of a discrete column (a value no real record has) and the
  largest spike excess (synthetic share of the most frequent value minus its real share);
- dimension-wise probability R^2 and membership-inference AUROC (95% bootstrap CI over the
  attacked records), both in the review's encoding (min-max, fitted on the training split), so
  old and new models are measured in one space.

Variants for models trained in the ``scaled`` space: ``clip`` (as they ship: values beyond
[0, 1] clamp onto the bound), ``reflect`` (folded back inside instead) and either with ``+snap``
(decoded onto the training split's support and precision). ``quantile`` models decode through
their stored CDF. The real-vs-real floor is the holdout's KS against the training split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from core.data.cohort import split_cohort
from core.data.records import EHRTable, ehr_table
from core.ehrdiff.pipeline import GenerationSettings
from core.encoding.vectors import VectorEncoding
from core.flexgen.pipeline import FlexGenSettings
from core.loading import load_model
from core.metrics.fidelity import column_fidelity, dimension_wise_probability
from core.metrics.privacy import _balanced, nearest_distances

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "physionet2012"


def load_split():
    from core.data.physionet2012 import load_physionet2012

    cohort = load_physionet2012(DATA / "set-a.tar.gz", DATA / "Outcomes-a.txt")
    split = split_cohort(cohort, 0.2, 0)
    return cohort, split


def split_tables() -> tuple[EHRTable, EHRTable, VectorEncoding]:
    """The shipped PhysioNet models' training and holdout record tables, and the review's
    encoding fitted on the training split (what the PhysioNet benchmarks compare in)."""
    if not DATA.exists():
        raise SystemExit(f"PhysioNet 2012 not found at {DATA}")
    cohort, split = load_split()
    table = ehr_table(cohort)
    train, holdout = table.subset(split.train), table.subset(split.holdout)
    return train, holdout, VectorEncoding.fit(train)


def mia_auroc(train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, seed: int):
    members, non_members = _balanced(train, holdout, seed)
    d = nearest_distances(np.concatenate([members, non_members]), synth)[:, 0]
    y = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    auc = roc_auc_score(y, -d)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(400):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            boots.append(roc_auc_score(y[idx], -d[idx]))
    return float(auc), tuple(float(q) for q in np.quantile(boots, [0.025, 0.975]))


def measure(
    name: str,
    train: EHRTable,
    holdout: EHRTable,
    synth: EHRTable,
    review_enc: VectorEncoding,
    seed: int,
) -> dict:
    columns = [(c.name, c.kind) for c in review_enc.columns]
    discrete = {
        c.name: (c.marginal.discrete, c.marginal.decimals) for c in review_enc.columns if c.marginal
    }
    res = column_fidelity(train.static, synth.static, columns, discrete)
    pf = res.per_feature
    num = pf[pf["kind"] == "numeric"]
    disc = num[num["support"].str.endswith("values")]
    x_tr, x_ho, x_sy = (review_enc.encode(t) for t in (train, holdout, synth))
    auc, ci = mia_auroc(x_tr, x_ho, x_sy, seed)
    return {
        "variant": name,
        "mean_ks": float(num["distance"].mean()),
        "worst": float(pf["distance"].max()),
        "worst_col": str(pf["feature"].iloc[0]),
        "above_010": int((pf["distance"] > 0.10).sum()),
        "off_support": float(disc["off_support"].max()) if len(disc) else float("nan"),
        "spike": float(pf["spike_excess"].max()),
        "spike_col": str(pf.loc[pf["spike_excess"].idxmax(), "feature"]),
        "r2": dimension_wise_probability(x_tr, x_sy).value,
        "mia_auc": auc,
        "mia_ci": ci,
        "per_column": pf,
    }


def reflect(vectors: np.ndarray, encoding: VectorEncoding) -> np.ndarray:
    out = vectors.copy()
    for c in encoding.columns:
        if c.kind == "numeric":
            v = out[:, c.start]
            out[:, c.start] = 1.0 - np.abs(1.0 - np.abs(v))
    return out


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(
        f"{'variant':<16}{'mean KS':>8}{'worst':>7}  {'worst column':<18}{'>0.10':>6}"
        f"{'off-sup':>8}{'spike':>7}  {'spike column':<18}{'R^2':>7}{'MIA AUROC (95% CI)':>26}"
    )
    for r in rows:
        lo, hi = r["mia_ci"]
        print(
            f"{r['variant']:<16}{r['mean_ks']:>8.3f}{r['worst']:>7.3f}  {r['worst_col']:<18}"
            f"{r['above_010']:>6}{r['off_support']:>8.3f}{r['spike']:>7.3f}  {r['spike_col']:<18}"
            f"{r['r2']:>7.4f}{r['mia_auc']:>10.3f} ({lo:.3f}-{hi:.3f})"
        )


def averaged(rows: list[dict]) -> dict:
    out = dict(rows[0])
    for key in ("mean_ks", "worst", "off_support", "spike", "r2", "mia_auc"):
        out[key] = float(np.mean([r[key] for r in rows]))
    out["above_010"] = round(float(np.mean([r["above_010"] for r in rows])), 1)
    out["mia_ci"] = tuple(float(np.mean([r["mia_ci"][i] for r in rows])) for i in range(2))
    return out


def worst_ten(rows: list[dict]) -> str:
    pf = rows[0]["per_column"]
    return ", ".join(
        f"{f} {d:.3f}" for f, d in zip(pf["feature"][:10], pf["distance"][:10], strict=True)
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--ehrdiff", nargs="*", default=[str(ROOT / "checkpoints" / "ehrdiff-physionet2012")]
    )
    p.add_argument(
        "--flexgen", nargs="*", default=[str(ROOT / "checkpoints" / "flexgen-physionet2012")]
    )
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=16, help="DPM-Solver++(2M) steps (EHRDiff)")
    args = p.parse_args()
    train, holdout, review_enc = split_tables()
    floor = measure("real holdout", train, holdout, holdout, review_enc, 0)
    resample = train.subset(np.random.default_rng(0).integers(0, train.n_records, train.n_records))
    copies = measure("train resample", train, holdout, resample, review_enc, 0)
    print_rows(
        "real-vs-real floors: 800 unseen patients (holdout), and 3,200 training patients drawn "
        "with replacement (a generator that copies; its MIA AUROC is the copying ceiling)",
        [floor, copies],
    )

    for folder in args.ehrdiff:
        model = load_model(folder, "cpu")
        space = {c.space for c in model.encoding.columns if c.kind == "numeric"}
        by_variant: dict[str, list[dict]] = {}
        for seed in args.seeds:
            settings = GenerationSettings(
                n=train.n_records, sampler="dpmpp_2m", steps=args.steps, seed=seed
            )
            out = model.generate(settings)
            ids, labels = out.table.record_ids, out.table.labels
            variants = {"as shipped": out.table}
            raw, _ = model.generate_vectors(settings, clamp=False)
            folded = reflect(raw, model.encoding)
            if space == {"scaled"}:
                snapped = model.encoding.with_marginals(VectorEncoding.fit(train))
                variants["clip+snap"] = snapped.decode(out.vectors, ids, labels)
                variants["reflect"] = model.encoding.decode(folded, ids, labels)
                variants["reflect+snap"] = snapped.decode(folded, ids, labels)
            else:
                variants["reflect"] = model.encoding.decode(folded, ids, labels)
            for name, synth in variants.items():
                by_variant.setdefault(name, []).append(
                    measure(name, train, holdout, synth, review_enc, seed)
                )
        rows = [averaged(v) for v in by_variant.values()]
        print_rows(
            f"EHRDiff {Path(folder).name} (numeric space: {', '.join(sorted(space))}; {len(args.seeds)} seeds)",
            rows,
        )
        print(f"worst 10 (seed {args.seeds[0]}, as shipped): {worst_ten(by_variant['as shipped'])}")

    for folder in args.flexgen:
        model = load_model(folder, "cpu")
        rows_seed = []
        for seed in args.seeds:
            out = model.generate(FlexGenSettings(n=train.n_records, seed=seed))
            rows_seed.append(measure("as shipped", train, holdout, out.table, review_enc, seed))
        print_rows(
            f"FLEXGEN-EHR {Path(folder).name} ({len(args.seeds)} seeds)", [averaged(rows_seed)]
        )
        print(f"worst 10 (seed {args.seeds[0]}): {worst_ten(rows_seed)}")


if __name__ == "__main__":
    main()
