"""Cross-check of the review's column shapes, column-pair trends and detection against SDMetrics
on the same records (issue #33).

    python -m benchmarks.sdmetrics_check --reference-python PATH [--sets ehrdiff flexgen holdout]
        [--seed 0] [--n 3200] [--boot 20]

SDMetrics 0.32 pins pandas < 3, which clashes with this project's pins, so it runs from its own
virtualenv (``python3 -m venv /work/runs/sdm-venv && /work/runs/sdm-venv/bin/pip install
sdmetrics==0.32.0``; pass ``/work/runs/sdm-venv/bin/python``). Real data: the PhysioNet 2012
training split (set-a, holdout 0.2, seed 0: 3,200 stays), its static columns (numeric columns
``numerical``, Gender and ICUType ``categorical``). Sets: the shipped EHRDiff (DPM-Solver++(2M)
16 steps, ``--n`` records), FLEXGEN-EHR as it generates, and the 800 real held-out stays.

Per set, SDMetrics' QualityReport (score, Column Shapes, Column Pair Trends) and
LogisticDetection (3 runs: its folds are unseeded), against ours:
- column shapes: mean over columns of 1 - KS (numeric) or 1 - TV (categorical), from
  :func:`core.metrics.fidelity.column_fidelity`;
- pair trends: :func:`core.metrics.pair_trends.pair_trends`;
- quality: their mean;
- detection: our logistic detector (the review's, on its encoding with missingness indicators)
  on SDMetrics' scale, 1 - (2 max(AUROC, 0.5) - 1), and the same detector on the features
  SDMetrics' LogisticDetection builds (mean-filled values, one-hot categories, robust scaling,
  lbfgs with 100 iterations) to check the implementation apart from the inputs.
Our intervals: estimate +- 1.96 bootstrap standard errors over records of both sets (``--boot``
resamples; the detector's: percentile bootstrap of its out-of-fold scores). Both files are written
at six significant digits, as a released file holds them. "agree" = SDMetrics' figure inside our interval.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import RobustScaler

from benchmarks.marginals import ROOT, split_tables
from core.data.records import EHRTable
from core.ehrdiff.pipeline import GenerationSettings
from core.encoding.vectors import VectorEncoding
from core.flexgen.pipeline import FlexGenSettings
from core.loading import load_model
from core.metrics import detection, fidelity, pair_trends

REFERENCE = textwrap.dedent(
    """
    import json, sys, time, warnings
    import numpy as np, pandas as pd
    warnings.simplefilter("ignore")
    from sdmetrics.reports.single_table import QualityReport
    from sdmetrics.single_table import LogisticDetection
    folder = sys.argv[1]
    meta = json.load(open(f"{folder}/metadata.json"))
    dtypes = {c: (float if m["sdtype"] == "numerical" else str) for c, m in meta["columns"].items()}
    real = pd.read_csv(f"{folder}/real.csv", dtype=dtypes)
    synth = pd.read_csv(f"{folder}/synth.csv", dtype=dtypes)
    t = time.perf_counter()
    report = QualityReport()
    report.generate(real, synth, meta, verbose=False)
    props = report.get_properties().set_index("Property")["Score"].to_dict()
    quality_s = time.perf_counter() - t
    t = time.perf_counter()
    detections = [float(LogisticDetection.compute(real, synth, meta)) for _ in range(3)]
    print(json.dumps({"quality": float(report.get_score()), "shapes": float(props["Column Shapes"]),
                      "pairs": float(props["Column Pair Trends"]), "detection": detections,
                      "quality_s": quality_s, "detection_s": time.perf_counter() - t}))
    """
)


def run_reference(python: str, folder: Path) -> dict:
    (folder / "reference.py").write_text(REFERENCE)
    proc = subprocess.run(
        [python, str(folder / "reference.py"), str(folder)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"SDMetrics failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def column_shapes(real: pd.DataFrame, synth: pd.DataFrame, kinds: dict[str, str]) -> float:
    per = fidelity.column_fidelity(real, synth, list(kinds.items())).per_feature
    return float((1.0 - per["distance"]).mean())


def sdmetrics_features(real: pd.DataFrame, synth: pd.DataFrame, kinds: dict[str, str]):
    """The matrix SDMetrics' LogisticDetection builds: numeric columns mean-filled (real mean),
    categorical ones one-hot."""
    parts_r, parts_s = [], []
    for col, kind in kinds.items():
        if kind == "numeric":
            mean = real[col].mean()
            parts_r.append(real[[col]].fillna(mean).to_numpy(float))
            parts_s.append(synth[[col]].fillna(mean).to_numpy(float))
        else:
            levels = sorted(real[col].dropna().astype(str).unique())
            for frame, parts in ((real, parts_r), (synth, parts_s)):
                values = frame[col].astype(str).to_numpy()
                parts.append(np.stack([values == v for v in levels], axis=1).astype(float))
    return np.hstack(parts_r), np.hstack(parts_s)


def sdmetrics_style_auroc(x_real: np.ndarray, x_synth: np.ndarray, seed: int) -> float:
    """Mean over 3 stratified folds of the AUROC of SDMetrics' pipeline (robust scaling,
    lbfgs logistic regression with its defaults) on all records of both sets."""
    x = np.concatenate([x_real, x_synth])
    y = np.r_[np.ones(len(x_real)), np.zeros(len(x_synth))]
    aucs = []
    for fit, test in StratifiedKFold(3, shuffle=True, random_state=seed).split(x, y):
        model = Pipeline([("scale", RobustScaler()), ("lr", LogisticRegression())])
        model.fit(x[fit], y[fit])
        aucs.append(detection.auroc(y[test], model.predict_proba(x[test])[:, 1]))
    return float(np.mean(aucs))


def to_score(auc: float) -> float:
    return 1.0 - (2.0 * max(auc, 0.5) - 1.0)


def ours(train: EHRTable, holdout: EHRTable, synth: EHRTable, enc: VectorEncoding, boot: int):
    kinds = {c.name: c.kind for c in enc.columns}
    real, syn = train.static.reset_index(drop=True), synth.static.reset_index(drop=True)
    shapes = column_shapes(real, syn, kinds)
    pairs = pair_trends.pair_trends(real, syn, kinds).value
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(boot):
        r = real.iloc[rng.integers(0, len(real), len(real))].reset_index(drop=True)
        s = syn.iloc[rng.integers(0, len(syn), len(syn))].reset_index(drop=True)
        draws.append((column_shapes(r, s, kinds), pair_trends.pair_trends(r, s, kinds).value))
    # resampling with replacement adds ties and inflates distances, so the interval is the
    # estimate +- 1.96 bootstrap standard errors rather than the resamples' percentiles
    draws = np.asarray(draws)
    draws = np.c_[draws, draws.mean(axis=1)]
    se = draws.std(axis=0, ddof=1)
    point = np.array([shapes, pairs, (shapes + pairs) / 2])
    q = np.stack([point - 1.96 * se, point + 1.96 * se])
    lr = detection.detection(
        enc.encode(train), enc.encode(synth), enc.encode(holdout), enc.dim_names,
        detectors=("logistic_regression",), n_boot=200,
    )[0]  # fmt: skip
    xr, xs = sdmetrics_features(real, syn, kinds)
    style = [sdmetrics_style_auroc(xr, xs, seed) for seed in range(3)]
    return {
        "shapes": (shapes, tuple(q[:, 0])),
        "pairs": (pairs, tuple(q[:, 1])),
        "quality": ((shapes + pairs) / 2, tuple(q[:, 2])),
        "detection": (to_score(lr.value), (to_score(lr.ci[1]), to_score(lr.ci[0]))),
        "detection_auroc": lr.value,
        "style": [to_score(a) for a in style],
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reference-python", required=True, help="a python with sdmetrics installed")
    p.add_argument("--sets", nargs="*", default=["holdout", "ehrdiff", "flexgen"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=3200)
    p.add_argument("--boot", type=int, default=20, help="bootstrap resamples for our intervals")
    args = p.parse_args()
    train, holdout, enc = split_tables()
    kinds = {c.name: c.kind for c in enc.columns}
    meta = {
        "columns": {
            c: {"sdtype": "numerical" if k == "numeric" else "categorical"}
            for c, k in kinds.items()
        }
    }
    sets: dict[str, EHRTable] = {}
    for name in args.sets:
        if name == "holdout":
            sets["real holdout (800)"] = holdout
        elif name == "ehrdiff":
            model = load_model(ROOT / "checkpoints" / "ehrdiff-physionet2012", "cpu")
            sets["EHRDiff"] = model.generate(GenerationSettings(n=args.n, seed=args.seed)).table
        elif name == "flexgen":
            model = load_model(ROOT / "checkpoints" / "flexgen-physionet2012", "cpu")
            sets["FLEXGEN-EHR"] = model.generate(FlexGenSettings(n=args.n, seed=args.seed)).table
        else:
            raise SystemExit(f"unknown set '{name}' (holdout, ehrdiff, flexgen)")
    print(
        f"real: {train.n_records:,} training stays, {len(kinds)} static columns; ours with "
        f"{args.boot} bootstrap resamples (95%); SDMetrics from {args.reference_python}"
    )
    head = f"{'set':<20}{'measure':<16}{'ours (95% CI)':>26}{'SDMetrics':>12}{'agree':>7}"
    print(head)
    agree = total = 0
    for name, synth in sets.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            # six significant digits, as a released file holds them: a float32 1.9 written as
            # 1.899999976158142 is another value to SDMetrics' KS and detector than a decoded 1.9
            train.static.to_csv(folder / "real.csv", index=False, float_format="%.6g")
            synth.static.to_csv(folder / "synth.csv", index=False, float_format="%.6g")
            (folder / "metadata.json").write_text(json.dumps(meta))
            theirs = run_reference(args.reference_python, folder)
        mine = ours(train, holdout, synth, enc, args.boot)
        their_det = float(np.mean(theirs["detection"]))
        for key, label, value in (
            ("quality", "quality score", theirs["quality"]),
            ("shapes", "column shapes", theirs["shapes"]),
            ("pairs", "pair trends", theirs["pairs"]),
            ("detection", "LR detection", their_det),
        ):
            v, (lo, hi) = mine[key]
            ok = lo - 1e-9 <= value <= hi + 1e-9
            agree += ok
            total += 1
            print(
                f"{name:<20}{label:<16}{v:>10.3f} ({lo:.3f}-{hi:.3f}){value:>12.3f}"
                f"{'yes' if ok else 'NO':>7}"
            )
        style = mine["style"]
        print(
            f"{'':<20}detection details: our review detector AUROC {mine['detection_auroc']:.3f}; "
            f"SDMetrics' 3 runs {', '.join(f'{d:.3f}' for d in theirs['detection'])}; our "
            f"logistic detector on SDMetrics' features {', '.join(f'{d:.3f}' for d in style)}"
        )
        print(
            f"{'':<20}SDMetrics seconds: quality report {theirs['quality_s']:.1f}, detection x3 "
            f"{theirs['detection_s']:.1f}"
        )
    print(f"\nSDMetrics' figure inside our 95% interval: {agree} of {total}")


if __name__ == "__main__":
    main()
