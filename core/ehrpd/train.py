"""Train an EHRPD model on a visit-sequence cohort (its training split), in the app or by the CLI:

    python -m core.ehrpd.train --cohort eicu_visits --input patient=... --input diagnosis=... \\
        [--input admission_dx=... --input past_history=...] --option min_visits=2 --out DIR

``torchrun --nproc_per_node=K -m core.ehrpd.train ...`` trains data-parallel (gloo on CPU, nccl
on GPU); each process draws its own patient batches.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from core.cli import (
    EquivalentCommand,
    add_cohort_arguments,
    add_training_arguments,
    cohort_data_card,
    load_cohort_from_args,
)
from core.data.visits import VisitCohort
from core.device import seeded_construction, select_device
from core.diffusion.ddpm import DDPMSchedule
from core.diffusion.edm import EMA
from core.ehrpd.encoding import VisitEncoding
from core.ehrpd.networks import EHRPDConfig, EHRPDNet
from core.ehrpd.pipeline import EHRPDModel
from core.errors import CohortError, ConfigError
from core.progress import StepCallback
from core.training import TrainingRun, training_command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EHRPDTrainConfig:
    steps: int = 3000
    batch_size: int = 64  # patients per step (all their visits train at once)
    lr: float = 1e-3
    d_model: int = 128
    layers: int = 2
    denoiser_hidden: int = 256
    min_patients: int = 5  # a code enters the vocabulary only if this many patients hold it
    max_codes: int = 256  # per modality
    max_visits: int | None = None  # None: 99th percentile of visits per patient
    label_dropout: float = 0.1
    conditional: bool = True
    # T = 1000 so x_T is pure noise (alpha_bar_T 4e-5): a short schedule leaves signal in x_T that
    # sampling, starting from N(0, I), cannot know, and the history then barely steers the visit.
    ddpm: DDPMSchedule = field(default_factory=lambda: DDPMSchedule(1000, 1e-4, 0.02))
    gap_weight: float = 0.5
    stop_weight: float = 0.5
    ema_decay: float = 0.995
    seed: int = 0

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("Steps and batch size must be positive.")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ConfigError("Label dropout must be in [0, 1).")


@dataclass(frozen=True, eq=False)
class EHRPDTrainResult:
    model: EHRPDModel
    losses: np.ndarray
    seconds: float
    stopped_early: bool


def train_ehrpd(
    cohort: VisitCohort,
    config: EHRPDTrainConfig = EHRPDTrainConfig(),
    *,
    model_id: str = "ehrpd-session",
    device: torch.device | str | None = None,
    callback: StepCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EHRPDTrainResult:
    """Fit EHRPD to ``cohort`` (already the training split). ``callback(step, total, loss)``
    reports progress; ``should_stop()`` ends training early with the weights so far."""
    config.validate()
    if not isinstance(cohort, VisitCohort):
        raise CohortError("EHRPD trains on a visit-sequence cohort (MEDS, MIMIC or eICU visits).")
    if cohort.n_patients < 2:
        raise ConfigError("Training needs at least two patients.")
    device = torch.device(device) if device is not None else select_device()
    encoding = VisitEncoding.fit(
        cohort,
        min_patients=config.min_patients,
        max_codes=config.max_codes,
        max_visits=config.max_visits,
    )
    batch = encoding.encode(cohort)
    visits, gaps, lengths = (t.to(device) for t in (batch.visits, batch.gaps, batch.lengths))
    n_classes, class_prior, labels = 0, (), None
    if config.conditional and batch.labels is not None and (batch.labels >= 0).any():
        known = batch.labels >= 0
        n_classes = len(cohort.label_classes) or int(batch.labels.max()) + 1
        counts = np.bincount(batch.labels[known].numpy(), minlength=n_classes)
        class_prior = tuple(float(c) for c in counts / counts.sum())
        labels = torch.where(known, batch.labels, torch.full_like(batch.labels, n_classes)).to(
            device
        )
    with seeded_construction(config.seed):  # batches and noise use explicit generators
        net = EHRPDNet(
            EHRPDConfig(
                dim=encoding.dim,
                max_visits=encoding.max_visits,
                n_classes=n_classes,
                d_model=config.d_model,
                layers=config.layers,
                denoiser_hidden=config.denoiser_hidden,
            )
        ).to(device)
    ema = EMA(net, config.ema_decay)
    run = TrainingRun(config.steps, callback, should_stop)
    trained = run.wrap(net, device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=0.0)
    warm = max(1, min(100, config.steps // 20))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / config.steps))
    )
    gen = run.generator(config.seed, device)
    cpu_gen = run.generator(config.seed)
    for _ in run.steps(config.steps):
        idx = torch.randint(len(visits), (min(config.batch_size, len(visits)),), generator=cpu_gen)
        idx = idx.to(device)
        lab = None
        if labels is not None:
            lab = labels[idx].clone()
            lab[torch.rand(len(idx), generator=cpu_gen).to(device) < config.label_dropout] = (
                n_classes
            )
        parts = trained(visits[idx], gaps[idx], lengths[idx], lab, config.ddpm, gen)
        loss = (
            parts["diffusion"]
            + config.gap_weight * parts["gap"]
            + config.stop_weight * parts["stop"]
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update(net)
        run.done(loss.item())
    seconds, losses = run.seconds, run.losses
    training = {
        "config": {**asdict(config), "ddpm": config.ddpm.to_json()},
        "patients": cohort.n_patients,
        "visits": cohort.n_visits,
        "vocabulary_sizes": {m: len(v) for m, v in encoding.vocabulary_map.items()},
        "steps_done": len(losses),
    }
    model = EHRPDModel(
        copy.deepcopy(ema.shadow).eval(),
        encoding,
        config.ddpm,
        model_id,
        class_prior,
        training=training,
    )
    log.info("trained %s in %.1fs (%d steps)", model_id, seconds, len(losses))
    return EHRPDTrainResult(model, np.asarray(losses), seconds, run.stopped)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.ehrpd.train", description="Train an EHRPD visit-sequence model."
    )
    add_cohort_arguments(p)
    cfg = EHRPDTrainConfig
    add_training_arguments(p, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr)
    p.add_argument("--min-patients", type=int, default=cfg.min_patients)
    p.add_argument("--eval-patients", type=int, default=0, help="0: as many as the training split")
    return p


def config_from_args(args: argparse.Namespace) -> EHRPDTrainConfig:
    return EHRPDTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        min_patients=args.min_patients,
        conditional=not args.unconditional,
        seed=args.seed,
    )


def equivalent_command(config: EHRPDTrainConfig, device: object = None) -> EquivalentCommand:
    """The flags that make :func:`config_from_args` return ``config``."""
    flags = {
        "steps": config.steps,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "min_patients": config.min_patients,
        "unconditional": not config.conditional,
        "seed": config.seed,
        "device": None if device is None else str(device),
    }
    return EquivalentCommand("core.ehrpd.train", build_parser(), flags)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with training_command("core.ehrpd.train", argv, args.out, args.device) as command:
        cohort, inputs = load_cohort_from_args(args)
        if not isinstance(cohort, VisitCohort):
            raise SystemExit(f"--cohort {args.cohort} is not a visit-sequence format")
        split = cohort.split(args.holdout, args.split_seed)
        train = cohort.subset(split.train)
        result = train_ehrpd(
            train,
            config_from_args(args),
            model_id=args.model_id or args.out.name,
            device=command.device,
            callback=command.log_every(500),
        )
        if command.writes:
            from core.ehrpd.evaluate import evaluate_model  # metrics only for export

            metrics = evaluate_model(
                result.model,
                train,
                cohort.subset(split.holdout),
                seed=args.seed,
                n=args.eval_patients,
            )
            command.export(
                result.model.save,
                args.out,
                data_card=cohort_data_card(args, cohort, inputs, split),
                metrics=metrics,
                seconds=result.seconds,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
