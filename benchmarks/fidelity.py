"""The fidelity measures of issue #33 on the shipped PhysioNet 2012 models.

    python -m benchmarks.fidelity [--seeds 0 1 2] [--n 3200] [--skip ehrdiff flexgen distilled]

Split: PhysioNet 2012 set-a, the project's patient-level split (holdout 0.2, seed 0), 3,200
training and 800 held-out stays. Every set is measured in the review's encoding (min-max, fitted
on the training split) with the review's own functions:
- detection AUROC, logistic regression and gradient boosting (3 folds, out of fold, 95%
  bootstrap CI over records), with the real-vs-real reference (training vs holdout stays, 800 of
  each) and the features each detector leans on;
- alpha-precision, beta-recall and authenticity (real holdout vs training as the reference);
- column-pair trends (mean pair similarity, the correlation and contingency parts, worst pairs);
- dimension-wise prediction R^2 and mean numeric KS.
Sets: the real holdout itself; EHRDiff with DPM-Solver++(2M) 16 steps (the Generate page's
default) and Heun 32 (the teacher the distilled sampler learnt from); the distilled companion
with 1 evaluation; FLEXGEN-EHR as it generates. ``--n`` records per seed; means over seeds with
95% t-intervals; seconds per measure.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np
from scipy import stats

from benchmarks.marginals import ROOT, split_tables
from core.data.records import EHRTable
from core.ehrdiff.pipeline import GenerationSettings
from core.encoding.vectors import VectorEncoding
from core.flexgen.pipeline import FlexGenSettings
from core.loading import load_model
from core.metrics import detection, fidelity, pair_trends, precision_recall

EHRDIFF = ROOT / "checkpoints" / "ehrdiff-physionet2012"
DISTILLED = ROOT / "checkpoints" / "ehrdiff-physionet2012-distilled"
FLEXGEN = ROOT / "checkpoints" / "flexgen-physionet2012"


def measure(train: EHRTable, holdout: EHRTable, synth: EHRTable, enc: VectorEncoding, seed: int):
    x_tr, x_ho, x_sy = (enc.encode(t) for t in (train, holdout, synth))
    names = enc.dim_names
    out: dict = {"seconds": {}}
    t = time.perf_counter()
    for r in detection.detection(x_tr, x_sy, x_ho, names, n_boot=200, seed=seed):
        key = r.id.removeprefix("detection_auroc_")
        out[key] = r.value
        out[key + "_ci"] = r.ci
        out[key + "_ref"] = r.details["real_vs_real_auroc"]
        out[key + "_ref_ci"] = r.details["real_vs_real_ci"]
        out[key + "_top"] = list(r.per_feature["feature"].head(8))
        out[key + "_score"] = r.details["detection_score"]
        if "alone_auroc" in r.per_feature:
            out[key + "_alone"] = dict(
                zip(
                    r.per_feature["feature"].head(8),
                    r.per_feature["alone_auroc"].head(8),
                    strict=True,
                )
            )
    out["seconds"]["detection"] = time.perf_counter() - t
    t = time.perf_counter()
    for r in precision_recall.precision_recall_authenticity(x_tr, x_sy, x_ho, seed=seed):
        out[r.id] = r.value
        out[r.id + "_ref"] = r.details["real_vs_real"]
    out["seconds"]["precision_recall"] = time.perf_counter() - t
    t = time.perf_counter()
    kinds = {c.name: c.kind for c in enc.columns}
    pt = pair_trends.pair_trends(train.static, synth.static, kinds)
    out["pair_trends"] = pt.value
    out["pair_correlation"] = pt.details["mean_correlation_similarity"]
    out["pair_contingency"] = pt.details["mean_contingency_similarity"]
    out["pair_worst"] = [
        f"{a} x {b} ({s:.2f})"
        for a, b, s in pt.per_feature[["column_1", "column_2", "score"]].head(5).to_numpy()
    ]
    out["seconds"]["pair_trends"] = time.perf_counter() - t
    numeric = [c.name for c in enc.columns if c.kind == "numeric"]
    out["ks"] = fidelity.numeric_marginals(train.static, synth.static, numeric).value
    out["dimwise_prediction_r2"] = fidelity.dimension_wise_prediction(x_tr, x_sy, x_ho, names).value
    return out


def interval(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return f"{v.mean():.3f}"
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.3f} ({v.mean() - half:.3f}-{v.mean() + half:.3f})"


ROWS = [
    ("logistic_regression", "detection AUROC, logistic regression"),
    ("gradient_boosting", "detection AUROC, gradient boosting"),
    ("logistic_regression_ref", "  real-vs-real reference (LR)"),
    ("gradient_boosting_ref", "  real-vs-real reference (GBM)"),
    ("logistic_regression_score", "  SDMetrics-scale detection score (LR)"),
    ("alpha_precision", "alpha-precision"),
    ("beta_recall", "beta-recall"),
    ("authenticity", "authenticity"),
    ("alpha_precision_ref", "  real-vs-real alpha-precision"),
    ("beta_recall_ref", "  real-vs-real beta-recall"),
    ("authenticity_ref", "  real-vs-real authenticity"),
    ("pair_trends", "column-pair trends"),
    ("pair_correlation", "  numeric pairs (correlation similarity)"),
    ("pair_contingency", "  other pairs (contingency similarity)"),
    ("dimwise_prediction_r2", "dimension-wise prediction R^2"),
    ("ks", "mean numeric KS"),
]


def report(results: dict[str, list[dict]]) -> None:
    names = list(results)
    print(f"\n{'measure':<42}" + "".join(f"{n:>26}" for n in names))
    for key, label in ROWS:
        cells = []
        for n in names:
            vals = [r[key] for r in results[n] if key in r]
            cells.append(f"{interval(vals):>26}" if vals else f"{'':>26}")
        print(f"{label:<42}" + "".join(cells))
    for n in names:
        runs = results[n]
        print(f"\n{n}:")
        for key in ("logistic_regression", "gradient_boosting"):
            cis = ", ".join(
                f"{r[key]:.3f} ({r[key + '_ci'][0]:.3f}-{r[key + '_ci'][1]:.3f})" for r in runs
            )
            top = Counter(f for r in runs for f in r[key + "_top"][:5]).most_common(8)
            print(f"  {key}: per seed {cis}")
            print(
                f"    leans on (times in a seed's top 5): {', '.join(f'{f} {c}' for f, c in top)}"
            )
            if key + "_alone" in runs[0]:
                alone = runs[0][key + "_alone"]
                print(
                    "    one-feature AUROC (first seed): "
                    + ", ".join(f"{f} {v:.2f}" for f, v in alone.items())
                )
        print(f"  worst pairs (first seed): {'; '.join(runs[0]['pair_worst'])}")
        secs = {k: np.mean([r["seconds"][k] for r in runs]) for k in runs[0]["seconds"]}
        print("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in secs.items()))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--n", type=int, default=3200, help="records per seed (the training size)")
    p.add_argument("--skip", nargs="*", default=[], choices=["ehrdiff", "flexgen", "distilled"])
    p.add_argument("--json", default=None, help="also write every figure to this file")
    args = p.parse_args()
    train, holdout, enc = split_tables()
    results: dict[str, list[dict]] = {"real holdout": [measure(train, holdout, holdout, enc, 0)]}
    print(f"{train.n_records} training and {holdout.n_records} held-out stays; {enc.dim} dims")
    runs = []
    if "ehrdiff" not in args.skip:
        runs.append(("EHRDiff DPM++ 16", EHRDIFF, dict(sampler="dpmpp_2m", steps=16)))
    if "distilled" not in args.skip:
        runs.append(("EHRDiff Heun 32", EHRDIFF, dict(sampler="heun", steps=32)))
        runs.append(("distilled 1 eval", DISTILLED, dict(sampler="distilled", steps=1)))
    for label, folder, kw in runs:
        model = load_model(folder, "cpu")
        guidance = model.distillation.guidance if model.distillation is not None else 1.0
        for seed in args.seeds:
            t = time.perf_counter()
            settings = GenerationSettings(n=args.n, seed=seed, guidance=guidance, **kw)
            synth = model.generate(settings).table
            gen_s = time.perf_counter() - t
            row = measure(train, holdout, synth, enc, seed)
            row["seconds"]["generate"] = gen_s
            results.setdefault(label, []).append(row)
            print(f"{label} seed {seed}: done ({gen_s:.0f} s to generate)", flush=True)
    if "flexgen" not in args.skip:
        model = load_model(FLEXGEN, "cpu")
        for seed in args.seeds:
            t = time.perf_counter()
            synth = model.generate(FlexGenSettings(n=args.n, seed=seed)).table
            gen_s = time.perf_counter() - t
            row = measure(train, holdout, synth, enc, seed)
            row["seconds"]["generate"] = gen_s
            results.setdefault("FLEXGEN-EHR", []).append(row)
            print(f"FLEXGEN-EHR seed {seed}: done ({gen_s:.0f} s to generate)", flush=True)
    report(results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
