"""Distilling an EHRDiff model into a one- or two-evaluation sampler.

    python -m core.ehrdiff.distill --teacher checkpoints/ehrdiff-physionet2012 \
        --out checkpoints/ehrdiff-physionet2012-distilled

Why this method. The teacher's deterministic sampler (Heun, 32 steps, the paper's setting) is a
fixed map from the starting noise to a record. The student, a copy of the teacher's network with
the same EDM preconditioning, is trained to give that map's end point in one evaluation from the
starting noise (Luhman & Luhman 2021) and, for a second evaluation, from the teacher's state at one
intermediate level (the consistency function of Song et al. 2023, learnt from the teacher's exact
trajectories instead of one-step differences). Sampling is multistep consistency sampling
(:func:`core.diffusion.karras.consistency`). Compared with consistency distillation on data or
progressive distillation (six halvings to reach one step):

- the student sees teacher samples only, never a training record, so it can copy no more of the
  training data than the teacher's own samples hold (measured by the benchmark, not assumed);
- it needs the checkpoint alone, not the cohort it was trained on;
- one training run, on a regression target that does not drift.

The cost is the teacher's samples (``pairs`` records at 63 evaluations each), made once.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from core.config import JSONConfig
from core.device import make_generator
from core.diffusion import karras
from core.diffusion.edm import EMA
from core.diffusion.guidance import classifier_free
from core.ehrdiff.pipeline import Distillation, EHRDiffModel, GenerationSettings
from core.ehrdiff.train import warmup_cosine_lr
from core.errors import ConfigError
from core.generation import chunks, draw_labels
from core.metrics.fidelity import dimension_wise_probability_from_means
from core.progress import ProgressCallback, StepCallback
from core.training import TrainingRun, training_command

log = logging.getLogger(__name__)

TEACHER_SAMPLER, TEACHER_STEPS = "heun", 32  # the paper's sampler, on the EDM schedule
_PAIR_CHUNK = 8_192


@dataclass(frozen=True)
class DistillConfig(JSONConfig):
    pairs: int = 65_536  # teacher samples (5% held out to watch for overfitting)
    steps: int = 8_000
    batch_size: int = 512
    lr: float = 2e-4
    warmup: int = 200
    ema_decay: float = 0.999
    # The second evaluation's level as a multiple of sigma_data (Song et al. use 0.821 at
    # sigma_data 0.5); snapped to the nearest level of the teacher's schedule.
    mid_level: float = 1.6
    guidance: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        if self.pairs < 1_000:
            raise ConfigError(f"At least 1,000 teacher samples are needed, got {self.pairs}.")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError("Steps must be positive and the batch at least 2.")
        if not 0 < self.mid_level < 50:
            raise ConfigError(
                f"The intermediate level must lie in (0, 50) sigma_data, got {self.mid_level}."
            )


@dataclass
class TeacherPairs:
    """The teacher's trajectories: start, state at ``mid_sigma`` and end, with their labels."""

    start: torch.Tensor
    mid: torch.Tensor
    end: torch.Tensor
    labels: torch.Tensor | None
    levels: tuple[float, float]  # (sigma_max, mid_sigma)
    seconds: float


def teacher_schedule(teacher: EHRDiffModel) -> torch.Tensor:
    settings = GenerationSettings(n=1, sampler=TEACHER_SAMPLER, steps=TEACHER_STEPS)
    return teacher.sigmas(settings)


def teacher_pairs(
    teacher: EHRDiffModel,
    config: DistillConfig,
    callback: ProgressCallback | None = None,
) -> TeacherPairs:
    """``config.pairs`` teacher samples from seeded noise, with each trajectory's state at the
    schedule level nearest ``config.mid_level`` x sigma_data."""
    if teacher.distillation is not None:
        raise ConfigError(f"'{teacher.model_id}' is itself distilled; distil its teacher.")
    start_time = time.perf_counter()
    device = teacher.device
    sigmas = teacher_schedule(teacher)
    target = config.mid_level * teacher.denoiser.edm.sigma_data
    inner = sigmas[1:-1].double().log()
    k = 1 + int((inner - math.log(target)).abs().argmin())
    gen = make_generator(config.seed, "cpu")
    labels = draw_labels(config.pairs, teacher.n_classes, None, teacher.class_prior, gen)
    mean = None
    if teacher.reference_means is not None:
        mean = torch.as_tensor(teacher.reference_means, dtype=torch.float32, device=device)
    starts, mids, ends = [], [], []
    with torch.no_grad():  # not inference mode: the student trains on these tensors
        for chunk in chunks(config.pairs, _PAIR_CHUNK, len(sigmas) - 1, callback):
            noise = torch.randn(len(chunk), teacher.encoding.dim, generator=gen).to(device)
            lab = None if labels is None else labels[chunk.start : chunk.stop].to(device)
            denoise = classifier_free(
                teacher.denoiser, lab, teacher.denoiser.net.null_label, config.guidance
            )
            x = karras.initial_state(noise, sigmas, mean)
            starts.append(x.cpu())
            x = karras.heun_from(denoise, x, sigmas[: k + 1])
            mids.append(x.cpu())
            ends.append(karras.heun_from(denoise, x, sigmas[k:]).cpu())
            if chunk.callback is not None:
                chunk.callback(len(sigmas) - 1, len(sigmas) - 1)
    return TeacherPairs(
        torch.cat(starts),
        torch.cat(mids),
        torch.cat(ends),
        labels,
        (float(sigmas[0]), float(sigmas[k])),
        time.perf_counter() - start_time,
    )


@dataclass
class DistillResult:
    model: EHRDiffModel
    losses: np.ndarray
    held_out_loss: dict[str, float]  # per level, on teacher samples the student never saw
    seconds: float
    pair_seconds: float


def _weighted_error(student, x, sigma, labels, end) -> torch.Tensor:
    """Squared error per record scaled by 1 / c_out^2 (the EDM weighting), so both levels weigh
    alike in the network's own output units."""
    sd = student.edm.sigma_data
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    return weight * ((student(x, sigma, labels) - end) ** 2).mean(dim=1, keepdim=True)


def distill(
    teacher: EHRDiffModel,
    config: DistillConfig,
    *,
    model_id: str | None = None,
    callback: StepCallback | None = None,
    pair_callback: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DistillResult:
    """A student of ``teacher`` sampling in one or two evaluations (see the module docstring)."""
    config.validate()
    if teacher.n_classes == 0 and config.guidance != 1.0:
        raise ConfigError("Guidance applies to label-conditional models only.")
    pairs = teacher_pairs(teacher, config, pair_callback)
    device = teacher.device
    student = copy.deepcopy(teacher.denoiser).train()
    student.requires_grad_(True)  # a freshly trained teacher is an EMA copy, frozen
    ema = EMA(student, config.ema_decay)
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=0.0)
    gen = make_generator(config.seed + 1, "cpu")
    order = torch.randperm(config.pairs, generator=gen)
    n_val = max(config.pairs // 20, 1)
    val, train = order[:n_val], order[n_val:]
    levels = torch.tensor(pairs.levels, dtype=torch.float32)
    inputs = (pairs.start, pairs.mid)
    half = config.batch_size // 2

    def batch(idx: torch.Tensor, level: int):
        lab = None if pairs.labels is None else pairs.labels[idx].to(device)
        sigma = levels[level].expand(len(idx), 1).to(device)
        return inputs[level][idx].to(device), sigma, lab, pairs.end[idx].to(device)

    run = TrainingRun(config.steps, callback, should_stop)
    for step in run.steps(config.steps):
        idx = train[torch.randint(len(train), (2 * half,), generator=gen)]
        for group in opt.param_groups:
            group["lr"] = warmup_cosine_lr(step, config.lr, config.warmup, config.steps, floor=0.05)
        loss = torch.cat(
            [
                _weighted_error(student, *batch(idx[:half], 0)),
                _weighted_error(student, *batch(idx[half:], 1)),
            ]
        ).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        ema.update(student)
        run.done(float(loss.detach()))
    seconds, losses = run.seconds, run.losses
    held_out = {}
    with torch.inference_mode():
        for level in range(len(inputs)):
            errors = [_weighted_error(ema.shadow, *batch(part, level)) for part in val.split(4096)]
            held_out[f"sigma_{pairs.levels[level]:.4g}"] = float(torch.cat(errors).mean())
    info = Distillation(
        teacher_model_id=teacher.model_id,
        teacher_sha256=teacher.manifest.sha256 if teacher.manifest else "",
        teacher_sampler=TEACHER_SAMPLER,
        teacher_steps=TEACHER_STEPS,
        guidance=config.guidance,
        levels=pairs.levels,
    )
    model = EHRDiffModel(
        ema.shadow.eval(),
        teacher.encoding,
        model_id or f"{teacher.model_id}-distilled",
        teacher.class_prior,
        data_mean=teacher.reference_means,
        distillation=info,
        constraints=teacher.constraints,  # the teacher's training records' logic
    )
    log.info(
        "distilled %s in %.1fs (+%.1fs of teacher samples)", model.model_id, seconds, pairs.seconds
    )
    return DistillResult(model, np.asarray(losses, np.float32), held_out, seconds, pairs.seconds)


def fidelity_against_teacher(
    teacher: EHRDiffModel, student: EHRDiffModel, n: int, seeds: tuple[int, ...] = (0, 1, 2)
) -> dict:
    """R^2 of dimension-wise probability against the training means (stored in the checkpoint)
    for the teacher's Heun-32 and the student at each number of evaluations, mean of ``seeds``."""
    ref = teacher.reference_means
    if ref is None:
        return {}

    def r2(model: EHRDiffModel, sampler: str, steps: int) -> float:
        values = []
        for seed in seeds:
            settings = GenerationSettings(
                n=n, sampler=sampler, steps=steps, seed=seed, guidance=student.distillation.guidance
            )
            vectors, _ = model.generate_vectors(settings)
            values.append(dimension_wise_probability_from_means(ref, vectors.mean(axis=0)).value)
        return float(np.mean(values))

    out = {"dimension_wise_probability_r2_teacher_heun32": r2(teacher, "heun", TEACHER_STEPS)}
    for evaluations in student.distillation.evaluations:
        out[f"dimension_wise_probability_r2_{evaluations}_evaluations"] = r2(
            student, karras.DISTILLED, evaluations
        )
    out["evaluated_with"] = f"n={n} per seed, seeds {list(seeds)}, against the training means"
    return out


# --- command line ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = DistillConfig()
    p = argparse.ArgumentParser(
        prog="python -m core.ehrdiff.distill",
        description="Distil an EHRDiff checkpoint into a one- or two-evaluation sampler.",
    )
    p.add_argument("--teacher", required=True, type=Path, help="EHRDiff checkpoint folder")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
    p.add_argument("--model-id", default=None)
    p.add_argument("--pairs", type=int, default=d.pairs, help="teacher samples to learn from")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--mid-level", type=float, default=d.mid_level, help="x sigma_data")
    p.add_argument("--guidance", type=float, default=d.guidance)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="auto | cpu | cuda | mps")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with training_command("core.ehrdiff.distill", argv, args.out, args.device) as command:
        teacher = EHRDiffModel.load(args.teacher, device=command.device)
        config = DistillConfig(
            pairs=args.pairs,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            mid_level=args.mid_level,
            guidance=args.guidance,
            seed=args.seed,
        )
        result = distill(
            teacher,
            config,
            model_id=args.model_id or args.out.name,
            callback=command.log_every(1000),
        )
        n = int(teacher.manifest.data_card.get("records_train", 2000)) if teacher.manifest else 2000
        metrics = {
            **fidelity_against_teacher(teacher, result.model, n),
            "held_out_weighted_error": result.held_out_loss,
            "final_loss": float(result.losses[-50:].mean()),
            "teacher_sample_seconds": round(result.pair_seconds, 1),
        }
        data_card = dict(teacher.manifest.data_card) if teacher.manifest else {}
        data_card["distilled_from"] = {
            "model_id": teacher.model_id,
            "sha256": teacher.manifest.sha256 if teacher.manifest else "",
            "note": "trained on the teacher's samples only; no training record was read",
        }
        command.export(
            partial(result.model.save, extra_config={"distill": config.to_json()}),
            args.out,
            data_card=data_card,
            metrics=metrics,
            seconds=result.seconds,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
