"""Training EHRDiff: a library function (used by the Generate page) and a reproducible CLI.

    python -m core.ehrdiff.train --cohort physionet2012 \
        --input records=../shared/data/physionet2012/set-a.tar.gz \
        --input outcomes=../shared/data/physionet2012/Outcomes-a.txt \
        --out checkpoints/ehrdiff-physionet2012 --steps 20000

Trains on the train part of the patient-level split only. With ``torchrun --nproc_per_node=N``
it runs data-parallel (DDP; gloo on CPU, nccl on GPU): each rank draws its own batches, gradients
are averaged, rank 0 writes the checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch

from core.cli import (
    EquivalentCommand,
    add_cohort_arguments,
    add_training_arguments,
    cohort_data_card,
    load_cohort_from_args,
)
from core.data.records import EHRTable
from core.device import seeded_construction, select_device
from core.diffusion.edm import EMA, EDMConfig, EDMDenoiser, edm_loss
from core.ehrdiff.dp import (
    ACCOUNTANTS,
    DPConfig,
    PrivacyGuarantee,
    PrivateSteps,
    require_one_record_per_patient,
)
from core.ehrdiff.network import EHRDiffMLP, NetworkConfig
from core.ehrdiff.pipeline import EHRDiffModel, GenerationSettings
from core.encoding.constraints import infer_constraints
from core.encoding.vectors import NUMERIC_SPACES, VectorEncoding
from core.errors import ConfigError
from core.progress import StepCallback
from core.training import TrainingCommand, TrainingRun, training_command

log = logging.getLogger(__name__)


# Network widths offered in the app; "paper" is EHRDiff's published size.
NETWORK_PRESETS: dict[str, tuple[int, ...]] = {
    "small": (256, 256),
    "medium": (512, 256, 256, 512),
    "paper": (1024, 384, 384, 384, 1024),
}


@dataclass(frozen=True)
class TrainConfig:
    units: tuple[int, ...] = (512, 256, 256, 512)
    embed_dim: int = 128
    steps: int = 10_000
    batch_size: int = 256
    lr: float = 1e-3
    warmup: int = 200
    ema_decay: float = 0.999
    # EDM's EMA ramp-up (half-life at most this x the steps so far); 0 = none, as the shipped
    # checkpoints were trained (add --ema-rampup 0 to their commands to reproduce them exactly)
    ema_rampup: float = 0.05
    label_dropout: float = (
        0.1  # share of labels replaced by the null label (classifier-free guidance)
    )
    conditional: bool = True  # use the label when the table has one
    sigma_data: float | None = None  # None = standard deviation of the training vectors
    numeric_space: str = "normal"  # normal scores of the CDF (core.encoding.marginals)
    seed: int = 0
    dp: DPConfig | None = None  # differentially private training (core.ehrdiff.dp)

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("Steps and batch size must be positive.")
        if not self.units or min(self.units) < 1:
            raise ConfigError("Network units must be positive widths.")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ConfigError("Label dropout must be in [0, 1).")
        if self.dp is not None:
            self.dp.validate()


@dataclass(frozen=True, eq=False)
class EHRDiffTrainResult:
    model: EHRDiffModel
    losses: np.ndarray  # [steps_done]
    stopped_early: bool
    seconds: float
    privacy: PrivacyGuarantee | None = None  # what DP training spent; None = not private


def warmup_cosine_lr(step: int, lr: float, warmup: int, steps: int, floor: float = 0.1) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``floor`` x ``lr`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train_ehrdiff(
    table: EHRTable,
    config: TrainConfig,
    *,
    model_id: str = "ehrdiff-session",
    device: torch.device | str | None = None,
    callback: StepCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    encoding: VectorEncoding | None = None,
    init_from: EHRDiffModel | None = None,
    patient_ids: np.ndarray | None = None,
) -> EHRDiffTrainResult:
    """Fit an EHRDiff model to ``table`` (already the training split).

    ``init_from`` fine-tunes an existing model (its encoding is reused and the table must fit it).
    ``callback(step, total, loss)`` reports progress; ``should_stop()`` ends training early with
    the weights so far. ``patient_ids`` (one per record of ``table``) are needed for DP training
    (``config.dp``): the patient is the privacy unit.
    """
    config.validate()
    if config.dp is not None and init_from is not None:
        raise ConfigError("DP training starts from fresh weights; fine-tuning is not private.")
    device = torch.device(device) if device is not None else select_device()
    if init_from is not None:
        encoding = init_from.encoding
    encoding = encoding or VectorEncoding.fit(table, config.numeric_space)
    x_all = torch.from_numpy(encoding.encode(table, np.random.default_rng(config.seed))).to(device)
    use_labels = config.conditional and table.labels is not None
    n_classes = 0
    labels_all = None
    class_prior: tuple[float, ...] = ()
    if use_labels:
        known = table.labels >= 0
        x_all = x_all[torch.from_numpy(known).to(device)]
        n_classes = len(table.label_classes) or int(table.labels.max()) + 1
        labels_np = table.labels[known]
        labels_all = torch.from_numpy(labels_np).to(device)
        if patient_ids is not None:
            patient_ids = patient_ids[known]
        class_prior = tuple(
            float(v) for v in np.bincount(labels_np, minlength=n_classes) / len(labels_np)
        )
    if len(x_all) < 2:
        raise ConfigError("Training needs at least two records.")

    if init_from is not None:
        denoiser = init_from.denoiser
        denoiser.train()
        if denoiser.net.config.n_classes != n_classes:
            raise ConfigError("The model to fine-tune and the cohort disagree on the label.")
    else:
        sigma_data = config.sigma_data or float(x_all.std().clamp(min=0.05))
        with seeded_construction(config.seed):  # sampling below uses explicit generators
            net = EHRDiffMLP(
                NetworkConfig(encoding.dim, tuple(config.units), config.embed_dim, n_classes)
            )
        denoiser = EDMDenoiser(net, EDMConfig(sigma_data=sigma_data)).to(device)
    ema = EMA(denoiser, config.ema_decay, config.ema_rampup or None)
    run = TrainingRun(config.steps, callback, should_stop)
    trained = run.wrap(denoiser, device)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=config.lr, weight_decay=0.0)
    gen = run.generator(config.seed, device)
    private = None
    if config.dp is not None:
        if run.world > 1:
            raise ConfigError("DP training runs in one process; torchrun is not supported yet.")
        require_one_record_per_patient(patient_ids)
        private = PrivateSteps(
            config.dp, denoiser, opt, n=len(x_all), batch_size=config.batch_size,
            steps=config.steps, noise_generator=run.generator(config.seed, device, stream=1),
        )  # fmt: skip
    for step in run.steps(config.steps):
        if private is not None:
            idx = private.sample(device, gen)
        else:
            idx = torch.randint(len(x_all), (config.batch_size,), device=device, generator=gen)
        lab = None
        if labels_all is not None:
            lab = labels_all[idx].clone()
            drop = torch.rand(len(lab), device=device, generator=gen) < config.label_dropout
            lab[drop] = n_classes  # null label
        for group in opt.param_groups:
            group["lr"] = warmup_cosine_lr(step, config.lr, config.warmup, config.steps)
        if private is not None:  # per-record clipping and noise replace the batch clipping
            loss_value = private.step(x_all[idx], lab, gen)
        else:
            loss = edm_loss(trained, denoiser.edm, x_all[idx], lab, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
            opt.step()
            loss_value = float(loss.detach())
        ema.update(denoiser)
        run.done(loss_value)
    seconds, losses = run.seconds, run.losses
    data_mean = x_all.mean(dim=0).cpu().numpy()
    model = EHRDiffModel(
        ema.shadow,
        encoding,
        model_id,
        class_prior,
        data_mean=data_mean,
        constraints=infer_constraints(table),  # what every training record obeys
    )
    if run.rank == 0:
        log.info(
            "trained %s for %d steps in %.1fs (final loss %.4f)",
            model_id,
            len(losses),
            seconds,
            losses[-1] if losses else float("nan"),
        )
    return EHRDiffTrainResult(
        model=model,
        losses=np.asarray(losses, dtype=np.float32),
        stopped_early=run.stopped,
        seconds=seconds,
        privacy=None if private is None else private.guarantee(),
    )


# --- command line ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.ehrdiff.train", description="Train an EHRDiff model on a cohort."
    )
    add_cohort_arguments(p)
    add_training_arguments(
        p, steps=TrainConfig.steps, batch_size=TrainConfig.batch_size, lr=TrainConfig.lr
    )
    p.add_argument("--units", default="512,256,256,512", help="hidden widths, comma separated")
    p.add_argument(
        "--numeric-space",
        choices=NUMERIC_SPACES,
        default=TrainConfig.numeric_space,
        help="numeric columns through their CDF (quantile) or min-max scaled (the older models)",
    )
    p.add_argument(
        "--ema-rampup",
        type=float,
        default=TrainConfig.ema_rampup,
        help="EMA half-life at most this x the steps so far (EDM's ramp-up; 0 = plain EMA, as "
        "the shipped checkpoints were trained)",
    )
    p.add_argument(
        "--eval-steps", type=int, default=16, help="DPM-Solver++(2M) steps for export metrics"
    )
    dp = p.add_argument_group("differential privacy (DP-SGD; one record per patient)")
    dp.add_argument(
        "--dp-epsilon", type=float, default=None, help="train with DP-SGD to this target epsilon"
    )
    dp.add_argument(
        "--dp-delta", type=float, default=None, help="DP delta (default 1/n^1.1, n records)"
    )
    dp.add_argument(
        "--dp-max-grad-norm", type=float, default=1.0, help="per-record gradient clipping norm"
    )
    dp.add_argument("--dp-accountant", choices=ACCOUNTANTS, default="rdp")
    return p


def dp_from_args(args: argparse.Namespace) -> DPConfig | None:
    """The ``--dp-*`` flags as a :class:`DPConfig`; None without ``--dp-epsilon``."""
    if args.dp_epsilon is None:
        if args.dp_delta is not None or args.dp_max_grad_norm != 1.0 or args.dp_accountant != "rdp":
            raise ConfigError("The --dp-* options need --dp-epsilon (the target epsilon).")
        return None
    return DPConfig(args.dp_epsilon, args.dp_delta, args.dp_max_grad_norm, args.dp_accountant)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        units=tuple(int(u) for u in args.units.split(",")),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        conditional=not args.unconditional,
        numeric_space=args.numeric_space,
        ema_rampup=args.ema_rampup,
        seed=args.seed,
        dp=dp_from_args(args),
    )


def equivalent_command(config: TrainConfig, device: object = None) -> EquivalentCommand:
    """The flags that make :func:`config_from_args` return ``config`` (the inverse, for model
    cards of models trained in the app)."""
    flags = {
        "steps": config.steps,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "units": ",".join(map(str, config.units)),
        "unconditional": not config.conditional,
        "numeric_space": config.numeric_space,
        "ema_rampup": config.ema_rampup,
        "seed": config.seed,
        "device": None if device is None else str(device),
    }
    if config.dp is not None:
        flags |= {
            "dp_epsilon": config.dp.epsilon,
            "dp_delta": config.dp.delta,
            "dp_max_grad_norm": config.dp.max_grad_norm,
            "dp_accountant": config.dp.accountant,
        }
    return EquivalentCommand("core.ehrdiff.train", build_parser(), flags)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config_from_args(args).validate()  # bad flags end here, before --out is claimed
    except ConfigError as exc:
        parser.error(str(exc))
    try:
        with training_command("core.ehrdiff.train", argv, args.out, args.device) as command:
            _train_and_save(args, command)
    except ConfigError as exc:  # e.g. DP refused for the cohort: a message, not a traceback
        raise SystemExit(f"error: {exc}") from None
    return 0


def _train_and_save(args: argparse.Namespace, command: TrainingCommand) -> None:
    from core.data.cohort import split_cohort
    from core.data.records import ehr_table
    from core.metrics.fidelity import dimension_wise_probability

    cohort, inputs = load_cohort_from_args(args)
    split = split_cohort(cohort, args.holdout, args.split_seed)
    table = ehr_table(cohort)
    train_table, holdout_table = table.subset(split.train), table.subset(split.holdout)
    config = config_from_args(args)
    model_id = args.model_id or args.out.name
    result = train_ehrdiff(
        train_table,
        config,
        model_id=model_id,
        device=command.device,
        callback=command.log_every(1000),
        patient_ids=cohort.patient_ids[split.train],
    )
    if command.writes:
        model = result.model
        settings = GenerationSettings(
            n=train_table.n_records, steps=args.eval_steps, seed=args.seed
        )
        synth = model.generate(settings)
        enc = model.encoding
        metrics = {
            "dimension_wise_probability_r2_vs_train": dimension_wise_probability(
                enc.encode(train_table), synth.vectors
            ).value,
            "dimension_wise_probability_r2_vs_holdout": dimension_wise_probability(
                enc.encode(holdout_table), synth.vectors
            ).value,
            "evaluated_with": f"{settings.sampler} {settings.steps} steps, n={settings.n}, seed={settings.seed}",
            "final_loss": float(result.losses[-20:].mean()),
        }
        data_card = cohort_data_card(args, cohort, inputs, split)
        if result.privacy is not None:
            data_card["differential_privacy"] = result.privacy.card()
        command.export(
            partial(
                model.save, extra_config={"train": {**asdict(config), "units": list(config.units)}}
            ),
            args.out,
            data_card=data_card,
            metrics=metrics,
            seconds=result.seconds,
        )


if __name__ == "__main__":
    raise SystemExit(main())
