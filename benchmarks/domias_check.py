"""Cross-check of ``core.metrics.domias`` against the ``domias`` package on the same data.

    python -m benchmarks.domias_check --reference-python PATH [--reps 1] [--size 400]

``domias`` 0.0.5 (van Breugel et al.'s package) pulls in its own torch and a CTGAN, so it runs
from its own virtualenv outside the repository (``python3 -m venv /work/runs/domias-venv &&
/work/runs/domias-venv/bin/pip install domias==0.0.5 tqdm==4.70.1 ctgan==0.8.0``: it imports
tqdm and ctgan without declaring them, and its CTGAN wrapper needs ctgan < 0.9; pass its
python). Each repetition takes minutes: the package always trains a CTGAN and runs its
baselines besides DOMIAS. The data: PhysioNet
2012 set-a on the project's split (holdout 0.2, seed 0) in the review's encoding, and three
synthetic sets of 3,200 records: the shipped EHRDiff model's (DPM-Solver++(2M), 16 steps, seed
0), a copy of the training split, and the model's set with 10% of its records replaced by
training records. Both sides attack the same records in the same coordinates: the whitened
10-component projection of ``core.metrics.domias`` (fitted on the synthetic set); per
repetition, ``--size`` random training patients are the members, one random half of the holdout
the non-members and the other half the reference (the package needs members and non-members of
one size). The package runs its "kde" density estimator (``scipy.stats.gaussian_kde``, Scott's
bandwidth on both densities); ours runs with ``bandwidth_factor=1`` (the same rule) for the
like-for-like check, and at its default (0.2 on the synthetic density) for reference. Printed:
both AUROCs with DeLong 95% intervals (computed on each side's scores), whether they agree (the
difference within the two half-widths combined, sqrt(e_ours^2 + e_package^2)), and the rank
correlation of the two sets of scores.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.marginals import split_tables
from core.ehrdiff.pipeline import GenerationSettings
from core.loading import load_model
from core.metrics import domias
from core.metrics.attack_stats import attack_stats

ROOT = Path(__file__).resolve().parents[1]

PACKAGE = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np, pandas as pd
    warnings.simplefilter("ignore")
    from domias.evaluator import evaluate_performance
    from domias.models.generator import GeneratorInterface
    z = np.load(sys.argv[1])
    members, non_members, reference, synth = (z[k] for k in ("members", "non_members", "reference", "synth"))

    class Released(GeneratorInterface):  # the synthetic set under test, as the package's generator
        def fit(self, data):
            return self
        def generate(self, count):
            return pd.DataFrame(synth[:count], columns=[str(i) for i in range(synth.shape[1])])

    dataset = np.concatenate([members, non_members, reference])
    out = evaluate_performance(
        Released(), dataset, len(members), len(reference), training_epochs=1,
        synthetic_sizes=[len(synth)], density_estimator="kde", seed=0, device="cpu",
    )[len(synth)]
    print(json.dumps({
        "auroc": float(out["MIA_performance"]["domias"]["aucroc"]),
        "scores": np.asarray(out["MIA_scores"]["domias"], dtype=float).ravel().tolist(),
    }))
    """
)


def run_package(python: str, arrays: dict[str, np.ndarray]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **arrays)
        proc = subprocess.run(
            [python, "-c", PACKAGE, str(path)],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"the domias package failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scenarios(train: np.ndarray, synth: np.ndarray, rng: np.random.Generator) -> dict:
    leaked = synth.copy()
    k = len(train) // 10
    leaked[:k] = train[rng.choice(len(train), k, replace=False)]
    return {"EHRDiff model": synth, "copy of train": train.copy(), "10% copies": leaked}


def half_width(ci: tuple[float, float], value: float) -> float:
    return max(ci[1] - value, value - ci[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference-python", required=True, help="a python with domias installed")
    p.add_argument("--reps", type=int, default=1, help="random member / holdout-half draws")
    p.add_argument("--size", type=int, default=400, help="members = non-members = reference")
    args = p.parse_args()
    train_t, holdout_t, enc = split_tables()
    model = load_model(ROOT / "checkpoints" / "ehrdiff-physionet2012", "cpu")
    out = model.generate(
        GenerationSettings(n=train_t.n_records, sampler="dpmpp_2m", steps=16, seed=0)
    )
    train, holdout, synth = (enc.encode(t) for t in (train_t, holdout_t, out.table))
    half = min(args.size, len(holdout) // 2)
    print(
        f"{len(train):,} training / {len(holdout):,} holdout stays; per repetition {half} "
        f"members, {half} non-members, {half} reference; synthetic sets of {len(synth):,}"
    )
    print(
        f"{'scenario':<15}{'rep':>4}{'package (95% CI)':>26}{'ours, Scott (95% CI)':>26}"
        f"{'agree':>7}{'rank r':>8}{'ours, default (95% CI)':>28}"
    )
    agree = total = 0
    for name, s in scenarios(train, synth, np.random.default_rng(0)).items():
        pca = domias.projection(s, domias.COMPONENTS, 0)
        for rep in range(args.reps):
            rng = np.random.default_rng(100 + rep)
            order = rng.permutation(len(holdout))
            non_members, reference = holdout[order[:half]], holdout[order[half : 2 * half]]
            members = train[rng.choice(len(train), half, replace=False)]
            arrays = {
                "members": pca.transform(members),
                "non_members": pca.transform(non_members),
                "reference": pca.transform(reference),
                "synth": pca.transform(s),
            }
            theirs = run_package(args.reference_python, arrays)
            t_scores = np.asarray(theirs["scores"])
            t_stats = attack_stats(t_scores[:half], t_scores[half:])
            ours = {}
            for factor in (1.0, domias.SYNTHETIC_BANDWIDTH):
                s_m, s_n = domias.domias_scores(members, non_members, reference, s, pca, factor)
                ours[factor] = (attack_stats(s_m, s_n), np.r_[s_m, s_n])
            o_stats, o_scores = ours[1.0]
            e = math.hypot(
                half_width(o_stats.auroc_ci, o_stats.auroc),
                half_width(t_stats.auroc_ci, t_stats.auroc),
            )
            ok = abs(o_stats.auroc - theirs["auroc"]) <= e + 1e-9
            agree += ok
            total += 1
            rho = stats.spearmanr(o_scores, t_scores).statistic
            d_stats = ours[domias.SYNTHETIC_BANDWIDTH][0]
            print(
                f"{name:<15}{rep:>4}"
                f"{theirs['auroc']:>10.3f} ({t_stats.auroc_ci[0]:.3f}-{t_stats.auroc_ci[1]:.3f})"
                f"{o_stats.auroc:>10.3f} ({o_stats.auroc_ci[0]:.3f}-{o_stats.auroc_ci[1]:.3f})"
                f"{'yes' if ok else 'NO':>7}{rho:>8.3f}"
                f"{d_stats.auroc:>12.3f} ({d_stats.auroc_ci[0]:.3f}-{d_stats.auroc_ci[1]:.3f})"
            )
    print(f"\nagree within the combined 95% half-widths: {agree} of {total}")


if __name__ == "__main__":
    main()
