"""Review-suite benchmark: every metric on 10,000 real (5,000 train + 5,000 holdout) and 10,000
synthetic records of 1,782 binary features, timed per metric on this machine.

    python -m benchmarks.metrics_suite [--reference-python PATH]
    python -m benchmarks.metrics_suite --sizes 10000 20000 50000 100000 [--limit 900]

With ``--sizes``, each size n (n synthetic records, n/2 training + n/2 holdout real ones) runs
in its own process, so its peak memory is its own; the table gives seconds, peak memory and the
slowest steps per size, and the growth exponent of time between the two largest sizes.

The data are drawn from a sparse latent-factor model of diagnosis codes (correlated, prevalences
0.1%..30%, a label driven by the codes); the "synthetic" set is an independent draw from the same
model, so privacy metrics should sit near chance. With ``--reference-python`` (a Python that has
``sdmetrics`` installed, e.g. a separate virtualenv, since SDMetrics needs pandas < 3), the same
data go through SDMetrics' equivalents in the same run and the speed ratio and agreement are
printed. Target: the whole suite under 60 s with exact MMD.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy import special

from core.data.cohort import CodeMatrix
from core.data.records import EHRTable
from core.encoding.vectors import VectorEncoding
from core.metrics import fidelity, privacy
from core.metrics.suite import ReviewSettings, review

DIMS, N_TRAIN, N_HOLDOUT, N_SYNTH = 1782, 5000, 5000, 10_000


def code_model(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loadings of 16 latent factors (10% non-zero), per-code offsets, and label weights."""
    rng = np.random.default_rng(seed)
    k = 16
    loadings = rng.normal(0, 0.8, (k, DIMS)) * (rng.random((k, DIMS)) < 0.1)
    prevalence = np.exp(rng.uniform(np.log(0.001), np.log(0.3), DIMS))
    offsets = special.ndtri(prevalence)  # probit of the target prevalence
    label_weights = rng.normal(0, 1, DIMS) * (rng.random(DIMS) < 0.05)
    return loadings, offsets, label_weights


def draw(
    model: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    loadings, offsets, label_weights = model
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, loadings.shape[0]))
    x = (z @ loadings + offsets + rng.normal(size=(n, DIMS)) > 0).astype(np.float32)
    score = x @ label_weights
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * (score - np.median(score))))).astype(np.int64)
    return x, y


def table(x: np.ndarray, y: np.ndarray, prefix: str) -> EHRTable:
    vocab = tuple(f"c{j:04d}" for j in range(DIMS))
    codes = CodeMatrix(sp.csr_array(x.astype(np.uint8)), vocab, "synthetic benchmark", "full")
    ids = np.asarray([f"{prefix}{i}" for i in range(len(x))], dtype=object)
    return EHRTable(ids, None, (), codes, y, "label", ("0", "1"))


REFERENCE = textwrap.dedent(
    """
    import json, sys, time, warnings
    import numpy as np, pandas as pd
    warnings.simplefilter("ignore")
    from sdmetrics.single_table import NewRowSynthesis, DCROverfittingProtection
    from sdmetrics.single_column import TVComplement
    folder, metric = sys.argv[1], sys.argv[2]
    load = lambda n: pd.DataFrame(np.load(f"{folder}/{n}.npy").astype(int)).add_prefix("c").astype(str)
    train, holdout, synth = load("train"), load("holdout"), load("synth")
    meta = {"columns": {c: {"sdtype": "categorical"} for c in train.columns}}
    jobs = {
        "new_row_synthesis": lambda: NewRowSynthesis.compute(train, synth, meta),
        "dcr_closer_to_training": lambda: DCROverfittingProtection.compute_breakdown(
            train, synth, holdout, meta, None)["synthetic_data_percentages"]["closer_to_training"],
        "tv_complement_mean": lambda: float(np.mean([TVComplement.compute(train[c], synth[c]) for c in train.columns])),
    }
    t = time.perf_counter()
    try:
        value = float(jobs[metric]())
    except Exception as exc:
        value = f"failed: {type(exc).__name__}"
    print(json.dumps({"value": value, "seconds": time.perf_counter() - t}))
    """
)


def run_reference(python: str, folder: str, metric: str, limit: float) -> tuple[float | str, float]:
    """One SDMetrics metric in its own process, so a crash, a memory kill or a time-out is reported."""
    script = Path(folder) / "reference.py"
    script.write_text(REFERENCE)
    try:
        proc = subprocess.run(
            [python, str(script), folder, metric],
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"did not finish in {limit:.0f} s", limit
    if proc.returncode != 0:
        return f"killed (exit {proc.returncode})", float("nan")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["value"], out["seconds"]


def one_size(n: int) -> dict:
    """The whole review of n synthetic against n/2 + n/2 real records: seconds, per-step seconds
    and this process's peak resident memory."""
    model = code_model(7)
    half = n // 2
    data = [draw(model, size, seed) for size, seed in ((half, 1), (n - half, 2), (n, 3))]
    train, holdout, synth = (table(x, y, p) for (x, y), p in zip(data, "ths", strict=True))
    del data
    start = time.perf_counter()
    result = review("independent draw", train, holdout, synth, settings=ReviewSettings())
    seconds = time.perf_counter() - start
    return {
        "n": n,
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "steps": {str(k): v for k, v in result.seconds.items()},
        "subsampled_from": result.subsampled_from,
    }


def by_size(sizes: list[int], limit: float) -> None:
    """Each size in its own process; prints the table and the growth exponent."""
    print(
        f"review suite by size: n synthetic + n/2 train + n/2 holdout real, {DIMS} binary features"
    )
    print(f"{'n':>8}{'seconds':>10}{'peak MB':>10}   slowest steps (s)")
    done: list[dict] = []
    for n in sizes:
        cmd = [sys.executable, "-m", "benchmarks.metrics_suite", "--one-size", str(n)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            print(f"{n:>8,}   did not finish in {limit:.0f} s")
            continue
        if proc.returncode != 0:
            print(f"{n:>8,}   failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        done.append(row)
        top = sorted(row["steps"].items(), key=lambda kv: -kv[1])[:5]
        steps = ", ".join(f"{k} {v:.1f}" for k, v in top)
        print(f"{n:>8,}{row['seconds']:>10.1f}{row['peak_mb']:>10,.0f}   {steps}", flush=True)
    if len(done) >= 2:
        a, b = done[-2], done[-1]
        k = math.log(b["seconds"] / a["seconds"]) / math.log(b["n"] / a["n"])
        print(f"time grows as n^{k:.2f} between {a['n']:,} and {b['n']:,}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", help="review each size in its own process")
    p.add_argument("--limit", type=float, default=900.0, help="seconds allowed per size")
    p.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--reference-python", default=None, help="a python with sdmetrics installed")
    p.add_argument(
        "--reference-limit", type=float, default=300.0, help="seconds allowed per SDMetrics metric"
    )
    p.add_argument(
        "--reference-rows",
        type=int,
        default=1000,
        help="records per set for the side-by-side comparison (SDMetrics' pandas DCR does not fit 10,000 in memory)",
    )
    args = p.parse_args()
    if args.one_size:
        print(json.dumps(one_size(args.one_size)))
        return
    if args.sizes:
        by_size(args.sizes, args.limit)
        return
    model = code_model(7)
    x_tr, y_tr = draw(model, N_TRAIN, 1)
    x_ho, y_ho = draw(model, N_HOLDOUT, 2)
    x_sy, y_sy = draw(model, N_SYNTH, 3)
    train, holdout, synth = table(x_tr, y_tr, "t"), table(x_ho, y_ho, "h"), table(x_sy, y_sy, "s")
    print(
        f"data: {N_TRAIN:,} train + {N_HOLDOUT:,} holdout real, {N_SYNTH:,} synthetic, {DIMS} binary features; "
        f"mean codes per record {x_tr.sum(1).mean():.1f}; label prevalence {y_tr.mean():.2f}"
    )
    enc = VectorEncoding.fit(train)
    start = time.perf_counter()
    result = review(
        "independent draw",
        train,
        holdout,
        synth,
        encoding=enc,
        settings=ReviewSettings(bootstrap=200),
    )
    total = time.perf_counter() - start
    print(f"\n{'metric':<58}{'value':>10}{'ideal':>8}")
    for r in result.results:
        print(f"{r.name[:57]:<58}{r.value:>10.4f}{r.ideal:>8.3f}")
    print(f"\n{'step':<32}{'seconds':>9}")
    for name, sec in result.seconds.items():
        print(f"{name:<32}{sec:>9.2f}")
    print(
        f"{'whole suite (incl. encoding)':<32}{total:>9.2f}   target < 60 s, MMD exact: {result.get('mmd').details['exact']}"
    )
    if result.skipped:
        print("skipped:", result.skipped)

    if not args.reference_python:
        print("\nreference library: not run (pass --reference-python with sdmetrics installed)")
        return
    rng = np.random.default_rng(0)
    m = args.reference_rows
    sub = {
        name: x[np.sort(rng.choice(len(x), min(m, len(x)), replace=False))]
        for name, x in (("train", x_tr), ("holdout", x_ho), ("synth", x_sy))
    }
    ref: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, x in sub.items():
            np.save(f"{folder}/{name}.npy", x.astype(np.int8))
        for metric in ("new_row_synthesis", "dcr_closer_to_training", "tv_complement_mean"):
            ref[metric], ref[metric + "_s"] = run_reference(
                args.reference_python, folder, metric, args.reference_limit
            )
    t = time.perf_counter()
    copies = privacy.exact_copies(sub["train"], sub["holdout"], sub["synth"])
    copies_s = time.perf_counter() - t
    t = time.perf_counter()
    dcr = privacy.distance_to_closest_record(sub["train"], sub["holdout"], sub["synth"])
    dcr_s = time.perf_counter() - t
    strict_share = float(
        np.mean(np.asarray(dcr.details["dcr_train"]) < np.asarray(dcr.details["dcr_holdout"]))
    )
    t = time.perf_counter()
    dwp = fidelity.dimension_wise_probability(sub["train"], sub["synth"])
    dwp_s = time.perf_counter() - t
    tv_ours = 1 - float(np.mean(np.abs(dwp.per_feature["real"] - dwp.per_feature["synthetic"])))
    rows = [
        (
            "1 - exact-copy rate (NewRowSynthesis)",
            1 - copies.value,
            ref["new_row_synthesis"],
            copies_s,
            ref["new_row_synthesis_s"],
        ),
        (
            "DCR share closer to train, strict < (DCROverfitting...)",
            strict_share,
            ref["dcr_closer_to_training"],
            dcr_s,
            ref["dcr_closer_to_training_s"],
        ),
        (
            "1 - mean |prevalence diff| (mean TVComplement)",
            tv_ours,
            ref["tv_complement_mean"],
            dwp_s,
            ref["tv_complement_mean_s"],
        ),
    ]
    print(f"\ncomparison with SDMetrics on the same {m:,} records per set ({DIMS} features)")
    print(
        f"{'metric (SDMetrics equivalent)':<58}{'ours':>8}{'sdmetrics':>22}{'our s':>8}{'their s':>9}{'ratio':>9}"
    )
    for label, a, b, sa, sb in rows:
        theirs = f"{b:>22.4f}" if isinstance(b, float) else f"{b:>22}"
        agree = (
            ""
            if not isinstance(b, float)
            else ("  agree" if abs(a - b) < 1e-3 else f"  differ by {a - b:+.4f}")
        )
        ratio = f"{sb / max(sa, 1e-9):>8.1f}x" if np.isfinite(sb) else f"{'n/a':>9}"
        print(f"{label:<58}{a:>8.4f}{theirs}{sa:>8.2f}{sb:>9.1f}{ratio}{agree}")
    print("ratio = their seconds / our seconds, measured in this run")


if __name__ == "__main__":
    main()
