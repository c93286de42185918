"""Training FLEXGEN-EHR: a library function (used by the app and the experiment) and a CLI.

    python -m core.flexgen.train --cohort physionet2012 \
        --input records=../shared/data/physionet2012/set-a.tar.gz \
        --input outcomes=../shared/data/physionet2012/Outcomes-a.txt \
        --out checkpoints/flexgen-physionet2012

``torchrun --nproc_per_node=N -m core.flexgen.train ...`` trains data-parallel (gloo on CPU,
nccl on GPU): every process takes its share of each epoch and batch, gradients are averaged, each
draws its own noise from its own generator, rank 0 exports.

Stages: (1) static VAE on records with static data, temporal VAE on records with a series;
(2) missing-modality handling (:mod:`core.flexgen.missing`): ``knn`` imputation in data space,
``complete_case``, or the ``flexgen`` variant imputing latents by an ``--alignment`` method;
(3) a latent DDPM on the standardised fused latent ``[z_T; z_S]``, label-conditional with
classifier-free guidance. Trains on the train part of the patient-level split only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from core.cli import (
    EquivalentCommand,
    add_cohort_arguments,
    cohort_data_card,
    load_cohort_from_args,
)
from core.config import JSONConfig
from core.data.cohort import Cohort, split_cohort
from core.data.records import ehr_table
from core.device import make_generator, seeded_construction, select_device
from core.diffusion import ddpm
from core.diffusion.ddpm import DDPMSchedule
from core.encoding.constraints import infer_constraints
from core.encoding.vectors import NUMERIC_SPACES
from core.errors import CohortError, ConfigError
from core.flexgen.alignment import METHODS, PAPER_METHOD, Alignment, AlignmentConfig, align
from core.flexgen.encoding import FlexGenEncoding, check_trainable, shared_measurements
from core.flexgen.missing import VARIANTS, knn_impute, note, training_rows
from core.flexgen.networks import (
    TEMPORAL_KINDS,
    DenoiserConfig,
    FlexVAEConfig,
    LatentDenoiser,
    StaticVAE,
    TemporalVAE,
    kl_divergence,
    static_loss,
    temporal_loss,
)
from core.flexgen.pipeline import FlexGenModel
from core.progress import StepCallback
from core.training import TrainingRun, training_command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlexGenConfig(JSONConfig):
    temporal_kind: str = "lstm"
    static_latent: int = 8
    temporal_latent: int = 32
    vae_hidden: int = 128
    vae_epochs: int = 40
    vae_batch: int = 128
    vae_lr: float = 2e-3
    kl_weight: float = 1e-3
    value_weight: float = 100.0  # squared error on [0, 1] values ~ a Gaussian with sd 0.07
    # T = 50 as in the paper, but betas up to 0.2: the paper's 1e-2 ends at alpha_bar_T = 0.78,
    # far from the N(0, I) that sampling starts from (measured cost in the model card).
    ddpm: DDPMSchedule = field(default_factory=lambda: DDPMSchedule(50, 1e-4, 0.2))
    denoiser_hidden: int = 256
    denoiser_blocks: int = 3
    diffusion_iters: int = 6000
    diffusion_batch: int = 256
    diffusion_lr: float = 1e-3
    label_dropout: float = 0.1
    conditional: bool = True
    variant: str = "knn"  # best or tied in the missing-modality grid (model card, issue #18)
    knn_k: int = 5
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    numeric_space: str = "scaled"  # min-max, decoded onto support and precision (see the card)
    seed: int = 0

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"Unknown variant '{self.variant}'; expected one of {VARIANTS}.")
        if self.temporal_kind not in TEMPORAL_KINDS:
            raise ConfigError(f"Temporal VAE must be one of {TEMPORAL_KINDS}.")
        if min(self.vae_epochs, self.diffusion_iters, self.vae_batch, self.diffusion_batch) < 1:
            raise ConfigError("Epochs, iterations and batch sizes must be positive.")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ConfigError("Label dropout must be in [0, 1).")
        if self.knn_k < 1:
            raise ConfigError("k of the kNN imputation must be at least 1.")


@dataclass(frozen=True, eq=False)
class FlexGenTrainResult:
    model: FlexGenModel
    losses: np.ndarray  # one value per optimiser step, all stages in order
    stopped_early: bool
    seconds: float
    alignment: Alignment | None

    @property
    def missing_parts_note(self) -> str | None:
        """One line on how the records missing a part were treated, for the training panel."""
        return note(self.model.training, self.alignment)


def _fit_vae(
    vae: torch.nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    cfg: FlexGenConfig,
    order_gen: torch.Generator,
    noise_gen: torch.Generator,
    run: TrainingRun,
) -> None:
    """Minibatch training; under torchrun each process takes its share of every epoch's
    permutation (``order_gen`` is the same in all of them) and draws its own noise."""
    trained = run.wrap(vae, x.device)
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.vae_lr)
    vae.train()
    usable = len(x) // run.world * run.world  # equal shares: every process runs as many steps
    for _ in range(cfg.vae_epochs):
        if run.stopped:
            break
        order = torch.randperm(len(x), generator=order_gen)[:usable]
        order = order[run.rank :: run.world].to(x.device)
        for lo in range(0, len(order), cfg.vae_batch):
            if not run.proceed():
                break
            xb = x[order[lo : lo + cfg.vae_batch]]
            recon, mu, logvar = trained(xb, noise_gen)
            loss = (loss_fn(recon, xb) + cfg.kl_weight * kl_divergence(mu, logvar)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run.done(loss.item())
    vae.eval()


def _vae_steps(n: int, cfg: FlexGenConfig, world: int) -> int:
    return cfg.vae_epochs * math.ceil(n // world / cfg.vae_batch)


@torch.no_grad()
def posterior_means(vae: torch.nn.Module, x: torch.Tensor, batch: int = 2048) -> np.ndarray:
    return (
        torch.cat([vae.encode(x[i : i + batch])[0] for i in range(0, len(x), batch)]).cpu().numpy()
    )


@dataclass(frozen=True, eq=False)
class Autoencoders:
    """Stage 1 of a training: the encoding, both VAEs and every record's latents. The latent
    alignment methods share it, so an experiment can fit it once and compare them."""

    encoding: FlexGenEncoding
    static_vae: StaticVAE
    temporal_vae: TemporalVAE
    x_s: np.ndarray  # the VAE inputs (kNN-filled for the knn variant)
    x_t: np.ndarray
    z_s: np.ndarray
    z_t: np.ndarray
    has_s: np.ndarray  # as used for training (all True for the data-space variants)
    has_t: np.ndarray
    rows: np.ndarray  # records the latent diffusion learns from
    stopped: bool
    fingerprint: str  # of the configuration that fitted it, less the alignment


# Settings that only the alignment and the latent diffusion read: stage 1 does not depend on them.
_STAGE_TWO = (
    "alignment", "ddpm", "denoiser_hidden", "denoiser_blocks", "diffusion_iters",
    "diffusion_batch", "diffusion_lr", "label_dropout",
)  # fmt: skip


def _stage_one_key(config: FlexGenConfig) -> str:
    raw = {k: v for k, v in config.to_json().items() if k not in _STAGE_TWO}
    return json.dumps(raw, sort_keys=True)


def fit_autoencoders(
    cohort: Cohort,
    config: FlexGenConfig,
    device: torch.device,
    run: TrainingRun | None = None,
) -> Autoencoders:
    """Encode the cohort, treat missing parts as the variant says, fit both VAEs; ``run``
    carries the progress and stop requests of the whole training."""
    run = run or TrainingRun(0)
    has_s, has_t = check_trainable(cohort)
    encoding = FlexGenEncoding.fit(cohort, config.numeric_space)
    values_rng = np.random.default_rng(config.seed)
    x_s = encoding.static_inputs(cohort, values_rng)
    x_t = encoding.temporal_inputs(cohort, values_rng)
    if config.variant == "knn":
        x_s, x_t = knn_impute(x_s, x_t, has_s, has_t, config.knn_k)
    has_s, has_t, rows = training_rows(has_s, has_t, config.variant)
    if config.variant == "complete_case" and len(rows) < 2:
        raise CohortError("complete-case training needs records with both modalities")
    s_rows = np.intersect1d(rows, np.flatnonzero(has_s))
    t_rows = np.intersect1d(rows, np.flatnonzero(has_t))
    with seeded_construction(config.seed):
        static_vae = StaticVAE(
            FlexVAEConfig(encoding.static_dim, config.static_latent, config.vae_hidden, "mlp")
        ).to(device)
        temporal_vae = TemporalVAE(
            FlexVAEConfig(
                encoding.temporal_channels,
                config.temporal_latent,
                config.vae_hidden,
                config.temporal_kind,
                encoding.temporal.n_steps,
            )
        ).to(device)
    order_gen = make_generator(config.seed, "cpu")  # the same permutations in every process
    noise_gen = run.generator(config.seed, device, stream=3)  # reparameterisation
    xs_dev, xt_dev = torch.from_numpy(x_s).to(device), torch.from_numpy(x_t).to(device)
    _fit_vae(static_vae, xs_dev[s_rows], static_loss, config, order_gen, noise_gen, run)
    _fit_vae(
        temporal_vae,
        xt_dev[t_rows],
        lambda r, x: temporal_loss(r, x, config.value_weight),
        config,
        order_gen,
        noise_gen,
        run,
    )
    return Autoencoders(
        encoding,
        static_vae,
        temporal_vae,
        x_s,
        x_t,
        posterior_means(static_vae, xs_dev),
        posterior_means(temporal_vae, xt_dev),
        has_s,
        has_t,
        rows,
        run.stopped,
        _stage_one_key(config),
    )


def train_flexgen(
    cohort: Cohort,
    config: FlexGenConfig = FlexGenConfig(),
    *,
    model_id: str = "flexgen-session",
    device: torch.device | str | None = None,
    callback: StepCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    autoencoders: Autoencoders | None = None,
) -> FlexGenTrainResult:
    """Fit FLEXGEN-EHR (or a baseline variant) to ``cohort`` (already the training split).

    ``callback(step, total, loss)`` reports progress over all stages; ``should_stop()`` ends the
    current stage early and skips the rest of training with what was learned so far.
    ``autoencoders`` (from :func:`fit_autoencoders` on this cohort with this configuration, up to
    its alignment and diffusion settings) skips stage 1. Under torchrun every process runs this
    with the same arguments; gradients are averaged across them.
    """
    config.validate()
    run = TrainingRun(0, callback, should_stop)  # the total is set below
    device = torch.device(device) if device is not None else select_device()
    labels_np = cohort.labels if config.conditional else None
    if labels_np is not None:
        classes = np.unique(labels_np[labels_np >= 0])
        if len(classes) < 2:
            name = cohort.label_name or "label"
            raise CohortError(
                f"the {name} has a single class ({len(classes)} distinct known value); "
                "train without label conditioning"
            )
    stage_one = 0
    if autoencoders is None:
        has_s, has_t, rows = training_rows(*check_trainable(cohort), config.variant)
        stage_one = sum(
            _vae_steps(len(np.intersect1d(rows, np.flatnonzero(has))), config, run.world)
            for has in (has_s, has_t)
        )
    elif (
        autoencoders.fingerprint != _stage_one_key(config)
        or len(autoencoders.z_s) != cohort.n_records
    ):
        raise ConfigError("the autoencoders were fitted with another configuration or cohort")
    run.total = stage_one + config.diffusion_iters
    ae = autoencoders or fit_autoencoders(cohort, config, device, run)
    has_s, has_t, rows = ae.has_s, ae.has_t, ae.rows
    z_s, z_t = ae.z_s, ae.z_t
    alignment = None
    if config.variant == "flexgen" and not (has_s.all() and has_t.all()):
        shared_t, shared_s = shared_measurements(cohort)
        alignment = align(
            z_t, z_s, has_t, has_s, labels_np, config.alignment,
            shared_temporal=shared_t, shared_static=shared_s,
        )  # fmt: skip
        z_s = np.where(has_s[:, None], z_s, alignment.impute_static(z_t, labels_np))
        z_t = np.where(has_t[:, None], z_t, alignment.impute_temporal(z_s, labels_np))
    fused = np.concatenate([z_t, z_s], axis=1)[rows].astype(np.float32)
    mean, std = fused.mean(axis=0), fused.std(axis=0) + 1e-6
    x0 = torch.from_numpy((fused - mean) / std).to(device)

    n_classes, class_prior, lab = 0, (), None
    if labels_np is not None:
        n_classes = len(cohort.label_classes) or int(labels_np.max()) + 1
        known = labels_np[rows]
        counts = np.bincount(known[known >= 0], minlength=n_classes)
        class_prior = tuple(float(c) for c in counts / counts.sum())
        lab = torch.from_numpy(np.where(known >= 0, known, n_classes)).to(device)
    with seeded_construction(config.seed + 1):
        denoiser = LatentDenoiser(
            DenoiserConfig(
                fused.shape[1], config.denoiser_hidden, config.denoiser_blocks, n_classes
            )
        ).to(device)
    trained = run.wrap(denoiser, device)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=config.diffusion_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, config.diffusion_iters, 0.1 * config.diffusion_lr
    )
    denoiser.train()
    # Batches, label dropout, diffusion steps and noise: this stage's own streams, per process.
    batch_gen = run.generator(config.seed, "cpu", stream=1)
    noise_gen = run.generator(config.seed, device, stream=2)
    batch = max(1, min(config.diffusion_batch, len(x0)) // run.world)
    for _ in run.steps(config.diffusion_iters):
        idx = torch.randint(0, len(x0), (batch,), generator=batch_gen).to(device)
        yb = None
        if lab is not None:
            yb = lab[idx].clone()
            drop = torch.rand(len(idx), generator=batch_gen).to(device) < config.label_dropout
            yb[drop] = n_classes
        loss = ddpm.epsilon_loss(
            lambda x, t, y=yb: trained(x, t, y), x0[idx], config.ddpm, noise_gen
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run.done(loss.item())
    training = {
        "variant": config.variant,
        "alignment_method": config.alignment.method if config.variant == "flexgen" else None,
        "records": int(len(rows)),
        "records_with_static": int(has_s[rows].sum()),
        "records_with_temporal": int(has_t[rows].sum()),
        "processes": run.world,
        "ddpm_terminal_signal": round(config.ddpm.terminal_signal, 4),
        "alignment": None if alignment is None else alignment.summary(),
        "config": config.to_json(),
    }
    model = FlexGenModel(
        ae.encoding,
        ae.static_vae,
        ae.temporal_vae,
        denoiser.eval(),
        config.ddpm,
        mean,
        std,
        model_id,
        class_prior,
        training=training,
        constraints=infer_constraints(ehr_table(cohort)),  # what every training record obeys
    )
    seconds = run.seconds
    log.info("trained %s (%s) in %.1fs", model_id, config.variant, seconds)
    return FlexGenTrainResult(
        model, np.asarray(run.losses), run.stopped or ae.stopped, seconds, alignment
    )


# --- command line ---------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.flexgen.train", description=__doc__.split("\n")[0]
    )
    add_cohort_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
    p.add_argument("--model-id", default=None)
    p.add_argument("--variant", choices=VARIANTS, default=FlexGenConfig.variant)
    p.add_argument(
        "--alignment",
        choices=tuple(METHODS),
        default=AlignmentConfig.method,
        help="with --variant flexgen: how a missing part's latent is imputed "
        f"(the paper: {PAPER_METHOD})",
    )
    p.add_argument("--temporal-kind", choices=TEMPORAL_KINDS, default="lstm")
    p.add_argument("--vae-epochs", type=int, default=FlexGenConfig.vae_epochs)
    p.add_argument("--diffusion-iters", type=int, default=FlexGenConfig.diffusion_iters)
    p.add_argument("--ddpm-steps", type=int, default=50)
    p.add_argument("--beta-start", type=float, default=1e-4)
    p.add_argument(
        "--beta-end", type=float, default=0.2, help="last beta (the paper: 1e-2, see the card)"
    )
    p.add_argument(
        "--numeric-space",
        choices=NUMERIC_SPACES,
        default=FlexGenConfig.numeric_space,
        help="values through their CDF (quantile) or min-max scaled (the older models)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--unconditional", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> FlexGenConfig:
    return replace(
        FlexGenConfig(),
        variant=args.variant,
        alignment=replace(AlignmentConfig(), method=args.alignment),
        temporal_kind=args.temporal_kind,
        vae_epochs=args.vae_epochs,
        diffusion_iters=args.diffusion_iters,
        ddpm=DDPMSchedule(args.ddpm_steps, args.beta_start, args.beta_end),
        conditional=not args.unconditional,
        numeric_space=args.numeric_space,
        seed=args.seed,
    )


def equivalent_command(config: FlexGenConfig, device: object = None) -> EquivalentCommand:
    """The flags that make :func:`config_from_args` return ``config`` (settings the command
    line does not expose keep their defaults, as in the app's training form)."""
    flags = {
        "variant": config.variant,
        "alignment": config.alignment.method,
        "temporal_kind": config.temporal_kind,
        "vae_epochs": config.vae_epochs,
        "diffusion_iters": config.diffusion_iters,
        "ddpm_steps": config.ddpm.steps,
        "beta_start": config.ddpm.beta_start,
        "beta_end": config.ddpm.beta_end,
        "unconditional": not config.conditional,
        "numeric_space": config.numeric_space,
        "seed": config.seed,
        "device": None if device is None else str(device),
    }
    return EquivalentCommand("core.flexgen.train", _parser(), flags)


def main(argv: list[str] | None = None) -> int:
    """Trains in one process, or in each of ``torchrun --nproc_per_node=N``; rank 0 exports."""
    args = _parser().parse_args(argv)
    with training_command("core.flexgen.train", argv, args.out, args.device) as command:
        cohort, inputs = load_cohort_from_args(args)
        split = split_cohort(cohort, args.holdout, args.split_seed)
        result = train_flexgen(
            cohort.subset(split.train),
            config_from_args(args),
            model_id=args.model_id or args.out.name,
            device=command.device,
            callback=command.log_every(500),
        )
        if command.writes:
            from core.flexgen.evaluate import evaluate_model  # heavy metrics only for export

            command.export(
                result.model.save,
                args.out,
                data_card=cohort_data_card(args, cohort, inputs, split),
                metrics=evaluate_model(result.model, cohort, split, seed=args.seed),
                seconds=result.seconds,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
