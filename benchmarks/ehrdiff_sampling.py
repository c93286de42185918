"""EHRDiff sampling benchmark: Heun-32 (the paper's setting), DPM-Solver++(2M) and the distilled
sampler, in one run on one machine.

    python -m benchmarks.ehrdiff_sampling [--n 10000] [--repeats 3] [--reference DIR]

1. Speed at the paper's network size (1,782 dims, units [1024, 384, 384, 384, 1024]; random
   weights, throughput does not depend on them): records/s of each sampler. With ``--reference DIR``
   (a checkout of https://github.com/sczzz3/EHRDiff; its code needs ``einops`` and ``matplotlib``)
   the reference's own network (``LinearModel`` + ``EDMDenoiser``) through its own
   ``ablation_sampler`` (Heun, 32 steps) runs in the same process, on the same noise, chunks and
   threads, its repeats alternating with ours.
2. Per shipped checkpoint and its distilled companion: records/s with the checkpoint's own network
   (as many records as it was trained on) and R^2 of dimension-wise probability against its training
   means, mean of 3 seeds.
3. Per checkpoint whose cohort is on this machine (its manifest's training command, read from the
   repository root; skipped with the reason when absent): on the same training split and holdout,
   MMD, TSTR AUROC (labelled cohorts) and membership-inference AUROC (distance attack, 95%
   bootstrap CI), 3 seeds, for Heun-32 and the distilled sampler.

Targets (issue #16): distilled >= 30x our Heun-32's records/s with R^2 and membership-inference
AUROC within 0.01 of Heun-32 on both checkpoints; our Heun-32 within 5% of the reference's or faster.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.marginals import mia_auroc
from core.device import describe_device, make_generator, select_device
from core.diffusion import karras
from core.diffusion.edm import EDMConfig, EDMDenoiser
from core.ehrdiff.network import EHRDiffMLP, NetworkConfig
from core.ehrdiff.pipeline import CHUNK, EHRDiffModel, GenerationSettings
from core.encoding.vectors import VectorEncoding
from core.metrics.fidelity import dimension_wise_probability, dimension_wise_probability_from_means
from core.metrics.ids import tstr_id
from core.metrics.mmd import mmd as mmd_metric
from core.metrics.utility import tstr
from core.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
PAPER = NetworkConfig(dim=1782, units=(1024, 384, 384, 384, 1024))
FAST_STEPS = (6, 8, 10, 12, 16)
SEEDS = (0, 1, 2)


# --- 1. speed at the paper's size -------------------------------------------------------------------
def timed(
    run: Callable[[torch.Tensor], object], noise: torch.Tensor, device: torch.device
) -> float:
    """Seconds to sample all of ``noise`` in the pipeline's chunks."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        for chunk in noise.split(CHUNK):
            run(chunk)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def our_sampler(denoiser: EDMDenoiser, sampler: str, steps: int, device: torch.device):
    if sampler == karras.DISTILLED:
        mid = 1.6 * denoiser.edm.sigma_data
        sigmas = torch.tensor([denoiser.edm.sigma_max, mid][:steps] + [0.0], device=device)
    else:
        sigmas = karras.karras_sigmas(
            steps, denoiser.edm.sigma_min, denoiser.edm.sigma_max, device=device
        )
    gen = make_generator(1, "cpu")  # drawn from by the distilled sampler only
    return lambda z: karras.sample(
        sampler, lambda x, s: denoiser(x, s, None), z, sigmas, generator=gen
    )


def reference_sampler(folder: Path, device: torch.device):
    """The reference code's Heun-32 at the paper's size (its MIMIC config: time_dim 384,
    sigma_data 0.14, sigma_min 0.02), or exit with the reason it cannot be imported."""
    sys.path.insert(0, str(folder.resolve()))
    try:
        from denoiser import EDMDenoiser as ReferenceDenoiser
        from model.linear_model import LinearModel
        from samplers import ablation_sampler
    except ImportError as exc:
        raise SystemExit(
            f"--reference {folder}: cannot import the reference code ({exc}). It needs a checkout "
            "of sczzz3/EHRDiff and the packages einops and matplotlib."
        ) from None
    torch.manual_seed(0)
    net = LinearModel(z_dim=PAPER.dim, time_dim=384, unit_dims=list(PAPER.units), use_cfg=False)
    ref = ReferenceDenoiser(net, sigma_min=0.02, sigma_max=80.0, sigma_data=0.14).to(device).eval()
    n_params = sum(p.numel() for p in ref.parameters())

    def run(z: torch.Tensor):
        return ablation_sampler(
            z, None, ref, num_steps=32, sigma_min=0.02, sigma_max=80.0, rho=7,
            solver="heun", discretization="edm", schedule="linear", scaling="none",
        )  # fmt: skip

    return run, n_params


def speed_at_paper_size(args, device: torch.device) -> dict[tuple[str, int], float]:
    torch.manual_seed(0)
    paper = EDMDenoiser(EHRDiffMLP(PAPER), EDMConfig()).to(device).eval()
    n_params = sum(p.numel() for p in paper.parameters())
    noise = torch.randn(args.n, PAPER.dim, generator=make_generator(0)).to(device)
    print(
        f"\n1) speed at the paper's size ({PAPER.dim} dims, units {list(PAPER.units)}, "
        f"{n_params / 1e6:.1f} M parameters; {args.n:,} records in chunks of {CHUNK:,}; median of "
        f"{args.repeats})"
    )
    runs = {("heun", 32): our_sampler(paper, "heun", 32, device)}
    ref_rate = None
    if args.reference is not None:
        ref_run, ref_params = reference_sampler(args.reference, device)
        print(f"   reference network: {ref_params / 1e6:.1f} M parameters")
        ours_t, ref_t = [], []
        for _ in range(args.repeats):  # alternating, so drift on a shared machine hits both
            ours_t.append(timed(runs["heun", 32], noise, device))
            ref_t.append(timed(ref_run, noise, device))
        rates = {("heun", 32): args.n / statistics.median(ours_t)}
        ref_rate = args.n / statistics.median(ref_t)
    else:
        rates = {("heun", 32): args.n / statistics.median(
            [timed(runs["heun", 32], noise, device) for _ in range(args.repeats)]
        )}  # fmt: skip
    for sampler, steps in [("dpmpp_2m", s) for s in FAST_STEPS] + [
        (karras.DISTILLED, 1),
        (karras.DISTILLED, 2),
    ]:
        run = our_sampler(paper, sampler, steps, device)
        rates[sampler, steps] = args.n / statistics.median(
            [timed(run, noise, device) for _ in range(args.repeats)]
        )
    heun = rates["heun", 32]
    print(f"{'sampler':<22}{'evals':>6}{'records/s':>12}{'x our Heun-32':>15}{'x reference':>13}")
    if ref_rate is not None:
        print(
            f"{'reference heun 32':<22}{63:>6}{ref_rate:>12,.0f}{ref_rate / heun:>15.2f}{1.0:>13.2f}"
        )
    for (sampler, steps), rate in rates.items():
        evals = karras.SAMPLERS.get(sampler).evaluations(steps)
        vs_ref = f"{rate / ref_rate:>13.2f}" if ref_rate else f"{'':>13}"
        print(f"{f'{sampler} {steps}':<22}{evals:>6}{rate:>12,.0f}{rate / heun:>15.2f}{vs_ref}")
    if ref_rate is not None:
        ratio = heun / ref_rate
        verdict = "meets" if ratio >= 0.95 else "misses"
        print(
            f"our Heun-32 / reference Heun-32 = {ratio:.3f} ({verdict} the within-5%-or-faster target)"
        )
    return rates


# --- 2. per checkpoint: speed and R^2 -------------------------------------------------------------
def companions() -> dict[str, str]:
    """Shipped teacher checkpoint -> its distilled companion's folder."""
    return {s.checkpoint: s.distilled for s in MODELS if s.checkpoint and s.distilled}


def sampler_runs(teacher: EHRDiffModel, student: EHRDiffModel | None, dpm_steps: int):
    runs = [("heun", 32, teacher), ("dpmpp_2m", dpm_steps, teacher)]
    if student is not None:
        runs += [(karras.DISTILLED, e, student) for e in student.distillation.evaluations]
    return runs


def settings_for(model: EHRDiffModel, sampler: str, steps: int, n: int, seed: int):
    guidance = model.distillation.guidance if model.distillation is not None else 1.0
    return GenerationSettings(n=n, sampler=sampler, steps=steps, seed=seed, guidance=guidance)


def checkpoint_report(name: str, device: torch.device, repeats: int, dpm_steps: int):
    teacher = EHRDiffModel.load(ROOT / "checkpoints" / name, device=device)
    companion = companions().get(name)
    student = None
    if companion and (ROOT / "checkpoints" / companion).is_dir():
        student = EHRDiffModel.load(ROOT / "checkpoints" / companion, device=device)
        if student.distillation.teacher_sha256 != teacher.manifest.sha256:
            raise SystemExit(f"{companion} was distilled from other weights than {name}'s.")
    n = int(teacher.manifest.data_card.get("records_train", 2000))
    ref = teacher.reference_means
    print(
        f"\n2) checkpoint {name} ({teacher.encoding.dim} dims; distilled: {companion or 'none'}): "
        f"n = {n:,} records per run, R^2 of dimension-wise probability vs its training means, "
        f"mean of {len(SEEDS)} seeds"
    )
    print(f"{'sampler':<16}{'evals':>6}{'records/s':>12}{'x Heun-32':>11}{'R^2':>8}{'diff':>9}")
    rows = {}
    for sampler, steps, model in sampler_runs(teacher, student, dpm_steps):
        settings = settings_for(model, sampler, steps, n, 0)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.generate_vectors(settings)
            seconds.append(time.perf_counter() - start)
        r2 = np.mean([
            dimension_wise_probability_from_means(
                ref, model.generate_vectors(settings_for(model, sampler, steps, n, s))[0].mean(axis=0)
            ).value
            for s in SEEDS
        ])  # fmt: skip
        rows[sampler, steps] = (n / statistics.median(seconds), float(r2))
    heun_rate, heun_r2 = rows["heun", 32]
    for (sampler, steps), (rate, r2) in rows.items():
        evals = karras.SAMPLERS.get(sampler).evaluations(steps)
        print(
            f"{f'{sampler} {steps}':<16}{evals:>6}{rate:>12,.0f}{rate / heun_rate:>11.1f}{r2:>8.4f}{r2 - heun_r2:>+9.4f}"
        )
    return teacher, student, rows


# --- 3. per checkpoint: utility and privacy on its own split ---------------------------------------
def training_split(teacher: EHRDiffModel):
    """The teacher's training split and holdout, rebuilt from its manifest's training command,
    or None with the reason (data absent, or not the cohort it was trained on)."""
    from core.cli import load_cohort_from_args
    from core.data.cohort import split_cohort
    from core.data.records import ehr_table
    from core.ehrdiff.train import build_parser

    words = shlex.split(teacher.manifest.training_command)
    args, _ = build_parser().parse_known_args(words[3:])  # after "python -m module"
    # The command's paths are relative to the repository root.
    slots = dict(pair.split("=", 1) for pair in args.input)
    for path in slots.values():
        if not (ROOT / path).exists():
            return None, f"{ROOT / path} is absent"
    args.input = [f"{slot}={ROOT / path}" for slot, path in slots.items()]
    cohort, _ = load_cohort_from_args(args)
    if cohort.fingerprint() != teacher.manifest.data_card.get("cohort_fingerprint"):
        return None, "the cohort found differs from the one the checkpoint was trained on"
    split = split_cohort(cohort, args.holdout, args.split_seed)
    table = ehr_table(cohort)
    return (table.subset(split.train), table.subset(split.holdout)), ""


def utility_privacy_report(name, teacher, student, dpm_steps: int) -> dict:
    split, why = training_split(teacher)
    if split is None:
        print(f"\n3) {name}: utility and privacy skipped ({why})")
        return {}
    train, holdout = split
    enc = VectorEncoding.fit(train)  # the Review page's encoding, fitted on the training split
    x_tr, x_ho = enc.encode(train), enc.encode(holdout)
    labelled = train.labels is not None and teacher.n_classes > 0
    print(
        f"\n3) {name}: {train.n_records:,} training / {holdout.n_records:,} held-out records; "
        f"{train.n_records:,} synthetic per seed; seeds {list(SEEDS)}; in the Review's encoding"
    )
    head = f"{'sampler':<16}{'R^2':>8}{'MMD':>9}"
    head += f"{'TSTR RF':>9}{'TSTR LR':>9}" if labelled else ""
    print(head + f"{'MIA AUROC (95% CI, per seed)':>52}")
    out = {}
    for sampler, steps, model in sampler_runs(teacher, student, dpm_steps):
        r2s, mmds, rf, lr, aucs, cis = [], [], [], [], [], []
        for seed in SEEDS:
            synth = model.generate(settings_for(model, sampler, steps, train.n_records, seed)).table
            x_sy = enc.encode(synth)
            r2s.append(dimension_wise_probability(x_tr, x_sy).value)
            mmds.append(mmd_metric(x_tr, x_sy, seed=seed).value)
            if labelled:
                res = tstr(
                    (x_tr, train.labels),
                    (x_sy, synth.labels),
                    (x_ho, holdout.labels),
                    seed=seed,
                    n_boot=20,
                )
                auroc = {r.id: r.value for r in res}
                rf.append(auroc[tstr_id("auroc", "random_forest")])
                lr.append(auroc[tstr_id("auroc", "logistic_regression")])
            auc, ci = mia_auroc(x_tr, x_ho, x_sy, seed)
            aucs.append(auc)
            cis.append(f"{auc:.3f} ({ci[0]:.3f}-{ci[1]:.3f})")
        line = f"{f'{sampler} {steps}':<16}{np.mean(r2s):>8.4f}{np.mean(mmds):>9.5f}"
        line += f"{np.mean(rf):>9.3f}{np.mean(lr):>9.3f}" if labelled else ""
        print(line + f"   mean {np.mean(aucs):.3f}: " + ", ".join(cis))
        out[sampler, steps] = {"r2": float(np.mean(r2s)), "mia": float(np.mean(aucs))}
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=10_000, help="records for the paper-size speed test")
    p.add_argument("--device", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reference", type=Path, default=None, help="checkout of sczzz3/EHRDiff")
    p.add_argument("--dpm-steps", type=int, default=8, help="DPM-Solver++(2M) steps in 2) and 3)")
    p.add_argument(
        "--checkpoint", nargs="+", default=["ehrdiff-physionet2012", "ehrdiff-eicu-icd9"]
    )
    p.add_argument("--skip-paper-size", action="store_true")
    args = p.parse_args()
    device = select_device(args.device)
    print(
        f"device: {describe_device(device)}; torch {torch.__version__}; "
        f"{torch.get_num_threads()} threads"
    )
    paper = {} if args.skip_paper_size else speed_at_paper_size(args, device)
    verdicts = []
    for name in args.checkpoint:
        teacher, student, rows = checkpoint_report(name, device, args.repeats, args.dpm_steps)
        held = utility_privacy_report(name, teacher, student, args.dpm_steps)
        if student is None:
            verdicts.append(f"{name}: no distilled companion shipped")
            continue
        heun_rate, heun_r2 = rows["heun", 32]
        for e in student.distillation.evaluations:
            rate, r2 = rows[karras.DISTILLED, e]
            line = (
                f"{name}, distilled {e} evaluation(s): {rate / heun_rate:.1f}x Heun-32's records/s "
                f"with this checkpoint"
            )
            if paper:
                line += (
                    f" ({paper[karras.DISTILLED, e] / paper['heun', 32]:.1f}x at the paper's size)"
                )
            line += f", R^2 {r2 - heun_r2:+.4f}"
            if held:
                line += (
                    f", MIA AUROC {held[karras.DISTILLED, e]['mia'] - held['heun', 32]['mia']:+.3f}"
                )
            ok = rate / heun_rate >= 30 and r2 >= heun_r2 - 0.01
            ok = ok and (
                not held or held[karras.DISTILLED, e]["mia"] <= held["heun", 32]["mia"] + 0.01
            )
            verdicts.append(line + (" -> meets" if ok else " -> misses") + " the targets")
    print("\n" + "\n".join(verdicts))


if __name__ == "__main__":
    main()
