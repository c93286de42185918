"""The membership-attack battery on shipped models (issue #30.1).

    python -m benchmarks.attack_battery [--ehrdiff DIR ...] [--flexgen DIR ...] [--seeds 0 1 2]

On the project's PhysioNet 2012 split (set-a, holdout 0.2, seed 0; the split the shipped models
were trained on), each model generates as many records as the training split per seed, and each
attack of the battery (the distance attack and DOMIAS, in the review's encoding) reports its
AUROC with a DeLong 95% interval, the TPR at 0.1%, 1% and 10% FPR with Clopper-Pearson 95%
intervals, and the 95% epsilon lower bound at delta 1e-5. Two reference rows frame them: the
training split resampled with replacement (a generator that copies; the ceiling) and the model's
first set with 10% of its records replaced by training records (a planted leak).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.marginals import split_tables
from core.ehrdiff.pipeline import GenerationSettings
from core.flexgen.pipeline import FlexGenSettings
from core.loading import load_model
from core.metrics import domias, privacy
from core.metrics.base import MetricResult

ROOT = Path(__file__).resolve().parents[1]


def battery(train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, seed: int) -> dict:
    return {
        "distance": privacy.membership_inference(train, holdout, synth, seed=seed),
        "DOMIAS": domias.domias(train, holdout, synth, seed=seed),
    }


def _ci(value: float, ci) -> str:
    return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"


def print_row(name: str, attack: str, r: MetricResult) -> None:
    d = r.details
    t = d["tpr_at_fpr"]
    print(
        f"{name:<36}{attack:<10}{d['n_members']:>6}/{d['n_non_members']:<5}"
        f"{_ci(d['auroc'], d['auroc_ci']):>22}"
        + "".join(f"{_ci(t[k]['tpr'], t[k]['tpr_ci']):>22}" for k in ("0.001", "0.01", "0.1"))
        + f"{d['epsilon_lower_bound']:>8.2f}"
    )


def header() -> None:
    print(
        f"{'set':<36}{'attack':<10}{'mem/non':>12}{'AUROC (95% CI)':>22}"
        f"{'TPR@0.1%FPR':>22}{'TPR@1%FPR':>22}{'TPR@10%FPR':>22}{'eps>=':>8}"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--ehrdiff", nargs="*", default=[str(ROOT / "checkpoints" / "ehrdiff-physionet2012")]
    )
    p.add_argument("--flexgen", nargs="*", default=[])
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    args = p.parse_args()
    train_t, holdout_t, enc = split_tables()
    train, holdout = enc.encode(train_t), enc.encode(holdout_t)
    header()
    resample = train[np.random.default_rng(0).integers(0, len(train), len(train))]
    for attack, r in battery(train, holdout, resample, 0).items():
        print_row("train resampled (copies)", attack, r)
    models = [(f, "ehrdiff") for f in args.ehrdiff] + [(f, "flexgen") for f in args.flexgen]
    for folder, family in models:
        model = load_model(folder, "cpu")
        name = Path(folder).name
        for k, seed in enumerate(args.seeds):
            if family == "ehrdiff":
                settings = GenerationSettings(
                    n=train_t.n_records, sampler="dpmpp_2m", steps=16, seed=seed
                )
            else:
                settings = FlexGenSettings(n=train_t.n_records, seed=seed)
            synth = enc.encode(model.generate(settings).table)
            for attack, r in battery(train, holdout, synth, seed).items():
                print_row(f"{name} seed {seed}", attack, r)
            if k == 0:
                leaked = synth.copy()
                rng = np.random.default_rng(seed)
                n = len(train) // 10
                leaked[:n] = train[rng.choice(len(train), n, replace=False)]
                for attack, r in battery(train, holdout, leaked, seed).items():
                    print_row(f"{name} seed {seed} + 10% copies", attack, r)


if __name__ == "__main__":
    main()
