"""Cross-check of ``core.metrics.anonymeter`` against the ``anonymeter`` package on the same data.

    python -m benchmarks.anonymeter_check --reference-python PATH [--n 2000] [--reps 3]

``anonymeter`` 1.1.0 pins numpy < 1.27 and pyarrow < 22, which clash with the project's pins, so
it runs from its own virtualenv (``python3 -m venv /tmp/anon && /tmp/anon/bin/pip install
anonymeter==1.1.0``; pass ``/tmp/anon/bin/python``). Records are drawn from a mixed population
(5 numeric, 4 categorical columns and a label, correlated through three latent factors); the
training and control (holdout) sets have the same size, so the package needs no size
correction. Three synthetic sets: a copy of the training set, an independent draw with 10% of its
records copied from training, and an independent draw. For each, both implementations run the
three attacks (singling out multivariate with 3 columns, linkability on the columns split
alternately, inference of the label from all other columns; 500 attacks each) and the benchmark
prints both risks with their 95% intervals and whether they agree: the difference within the two
errors combined (sqrt(e_ours^2 + e_package^2)).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.cohort import FeatureSpec
from core.data.records import EHRTable
from core.metrics import anonymeter

NUMERIC = ("age", "heart_rate", "creatinine", "lactate", "weight")
CATEGORICAL = {
    "sex": ("F", "M"),
    "unit": ("MICU", "SICU", "CCU", "CSRU"),
    "ventilated": ("no", "yes"),
    "admission": ("medical", "surgical", "trauma"),
}


def population(n: int, rng: np.random.Generator) -> pd.DataFrame:
    z = rng.normal(size=(n, 3))
    frame = pd.DataFrame(
        {
            "age": np.clip(np.round(65 + 12 * z[:, 0] + 4 * rng.normal(size=n)), 18, 100),
            "heart_rate": np.round(85 + 10 * z[:, 1] + 8 * rng.normal(size=n), 1),
            "creatinine": np.round(np.exp(0.1 + 0.5 * z[:, 2] + 0.3 * rng.normal(size=n)), 2),
            "lactate": np.round(np.exp(0.5 + 0.4 * z[:, 1] + 0.3 * rng.normal(size=n)), 1),
            "weight": np.round(80 + 15 * rng.normal(size=n), 1),
        }
    )
    frame["sex"] = np.where(rng.random(n) < 0.45, "F", "M")
    frame["unit"] = np.array(CATEGORICAL["unit"])[
        np.clip((z[:, 2] + rng.normal(size=n) + 2).astype(int), 0, 3)
    ]
    frame["ventilated"] = np.where(z[:, 1] + rng.normal(size=n) > 0.5, "yes", "no")
    frame["admission"] = np.array(CATEGORICAL["admission"])[rng.integers(0, 3, n)]
    risk = 0.06 * (frame["age"] - 65) + 0.8 * z[:, 1] - 1.5
    frame["label"] = np.where(rng.random(n) < 1 / (1 + np.exp(-risk)), "died", "survived")
    return frame


def as_table(frame: pd.DataFrame, prefix: str) -> EHRTable:
    feats = tuple(FeatureSpec(c, "numeric") for c in NUMERIC) + tuple(
        FeatureSpec(c, "categorical", categories=v) for c, v in CATEGORICAL.items()
    )
    labels = (frame["label"] == "died").to_numpy(np.int64)
    ids = np.asarray([f"{prefix}{i}" for i in range(len(frame))], dtype=object)
    static = frame[[f.name for f in feats]].reset_index(drop=True)
    return EHRTable(ids, static, feats, None, labels, "label", ("survived", "died"))


def synthetic_sets(train: pd.DataFrame, n: int, rng: np.random.Generator) -> dict:
    k = n // 10
    copied = train.iloc[rng.choice(len(train), k, replace=False)]
    mixed = pd.concat([copied, population(n - k, rng)], ignore_index=True)
    return {"copy": train.copy(), "10% copies": mixed, "independent": population(n, rng)}


PACKAGE = textwrap.dedent(
    """
    import json, sys, time, warnings
    import numpy as np, pandas as pd
    warnings.simplefilter("ignore")
    from anonymeter.evaluators import InferenceEvaluator, LinkabilityEvaluator, SinglingOutEvaluator
    folder, seed = sys.argv[1], int(sys.argv[2])
    np.random.seed(seed)  # the package samples its targets with pandas' global generator
    ori, control, syn = (pd.read_csv(f"{folder}/{n}.csv") for n in ("train", "control", "synth"))
    cols = [c for c in ori.columns if c != "label"]
    out = {}
    def record(name, ev, start):
        r = ev.results()
        risk = r.risk()
        out[name] = {"risk": risk.value, "ci": list(risk.ci), "main": r.attack_rate.value,
                     "control": r.control_rate.value, "seconds": time.perf_counter() - start}
    t = time.perf_counter()
    ev = SinglingOutEvaluator(ori, syn, control=control, n_attacks=500, n_cols=3, seed=seed)
    record("anonymeter_singling_out", ev.evaluate(mode="multivariate"), t)
    t = time.perf_counter()
    ev = LinkabilityEvaluator(ori, syn, aux_cols=(cols[0::2], cols[1::2]), n_attacks=500, control=control)
    record("anonymeter_linkability", ev.evaluate(n_jobs=1), t)
    t = time.perf_counter()
    ev = InferenceEvaluator(ori, syn, aux_cols=cols, secret="label", n_attacks=500, control=control)
    record("anonymeter_inference", ev.evaluate(n_jobs=1), t)
    print(json.dumps(out))
    """
)


def run_package(python: str, folder: Path, seed: int) -> dict:
    proc = subprocess.run(
        [python, "-c", PACKAGE, str(folder), str(seed)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the anonymeter package failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_ours(train: pd.DataFrame, control: pd.DataFrame, synth: pd.DataFrame, seed: int) -> dict:
    tables = anonymeter.attack_tables(
        as_table(train, "t"), as_table(control, "h"), as_table(synth, "s")
    )
    out = {}
    for fn in (anonymeter.singling_out, anonymeter.linkability, anonymeter.inference):
        start = time.perf_counter()
        r = fn(tables, seed=seed)
        out[r.id] = {
            "risk": r.value,
            "ci": list(r.ci),
            "main": r.details["main_rate"],
            "control": r.details["control_rate"],
            "seconds": time.perf_counter() - start,
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference-python", required=True, help="a python with anonymeter installed")
    p.add_argument("--n", type=int, default=2000, help="records in each of train, control, synth")
    p.add_argument("--reps", type=int, default=3, help="repetitions (new draws) per scenario")
    args = p.parse_args()
    print(
        f"{'scenario':<12}{'rep':>4} {'attack':<26}{'ours (95% CI)':>26}"
        f"{'package (95% CI)':>26}{'agree':>7}{'our s':>7}{'pkg s':>7}"
    )
    agree = total = 0
    for rep in range(args.reps):
        rng = np.random.default_rng(100 + rep)
        train, control = population(args.n, rng), population(args.n, rng)
        for scenario, synth in synthetic_sets(train, args.n, rng).items():
            with tempfile.TemporaryDirectory() as tmp:
                for name, frame in (("train", train), ("control", control), ("synth", synth)):
                    frame.to_csv(Path(tmp) / f"{name}.csv", index=False)
                theirs = run_package(args.reference_python, Path(tmp), rep)
            ours = run_ours(train, control, synth, rep)
            for attack, o in ours.items():
                t = theirs[attack]
                # half-widths of the two 95% intervals (unclamped where one side is clamped)
                e_o = max(o["ci"][1] - o["risk"], o["risk"] - o["ci"][0])
                e_t = max(t["ci"][1] - t["risk"], t["risk"] - t["ci"][0])
                ok = abs(o["risk"] - t["risk"]) <= math.hypot(e_o, e_t) + 1e-9
                agree += ok
                total += 1
                print(
                    f"{scenario:<12}{rep:>4} {attack.removeprefix('anonymeter_'):<26}"
                    f"{o['risk']:>8.3f} ({o['ci'][0]:.3f}-{o['ci'][1]:.3f})"
                    f"{t['risk']:>10.3f} ({t['ci'][0]:.3f}-{t['ci'][1]:.3f})"
                    f"{'yes' if ok else 'NO':>7}{o['seconds']:>7.1f}{t['seconds']:>7.1f}"
                )
    print(f"\nagree within the combined 95% error: {agree} of {total}")


if __name__ == "__main__":
    main()
