"""Train the DDL-CXR forecaster on longitudinal pairs in a trained VAE's latent space.

``python -m core.cxr.train_forecaster --vae checkpoints/cxr-vae-64 --hannover-root DIR --out DIR``
(or ``--mimic-metadata/--mimic-ehr/--mimic-images`` for the MIMIC-CXR-JPG + MIMIC-IV layout).
``--pretrain-images DIR`` instead trains on pseudo-pairs of single images (two random views of
each, no EHR; ``core.cxr.augment``); ``--init DIR`` then fine-tunes from such a checkpoint.
``--target residual`` denoises the change from the prior instead of the later latent.
Objective per batch: epsilon MSE with the true EHR context, plus the contrastive hinge
``max(0, margin + L(E) - L(E'))`` against ``E' = (1 - beta) E + beta * noise`` with its weight
ramped 0 -> 1, plus the EHR encoder's auxiliary outcome loss. The EHR context is dropped with a
small probability so the same network also serves as the "no EHR" model.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.cli import add_run_arguments, add_split_arguments, split_card
from core.cxr.data import (
    DATASET_CARDS,
    HANNOVER_LABS,
    MEDFUSE_VARIABLES,
    PairRecord,
    dataset_cards,
    example_pair,
    hannover_pairs,
    holdout_patients,
    image_folder,
    mimic_pairs,
)
from core.cxr.diffusion import ANCHORS, TARGETS, DiffusionConfig, perturb_context, ramp
from core.cxr.ehr_encoder import EHREncoder, EHREncoderConfig
from core.cxr.ehr_window import EHRVocabulary
from core.cxr.latents import (
    PSEUDO_GAP_RANGE_HOURS,
    LatentPairs,
    fit_sampler,
    pair_latents,
    pseudo_pair_latents,
    residual_scale,
)
from core.cxr.pipeline import CXRAutoencoder, DDLCXRForecaster
from core.cxr.unet import LatentUNet, UNetConfig
from core.device import GlobalStream
from core.diffusion.ddpm import DDPMSchedule
from core.progress import StepCallback
from core.training import TrainingCommand, TrainingRun, training_command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForecasterTrainConfig:
    """The optimisation: steps, batch, learning rate, contrastive ramp, label loss weight."""

    steps: int = 4000
    batch_size: int = 32
    lr: float = 2e-4
    ramp_steps: int = 1000
    label_weight: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class ForecasterConfig:
    """Everything a forecaster training is built from; the command line builds it
    (:func:`config_from_args`). ``sampler_defaults``: the manifest's default anchor, strength
    and eta (the rest of the sampler is fitted on the training pairs)."""

    encoder: EHREncoderConfig
    unet: UNetConfig
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: ForecasterTrainConfig = field(default_factory=ForecasterTrainConfig)
    sampler_defaults: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ForecasterTrainResult:
    model: DDLCXRForecaster
    losses: np.ndarray  # denoising MSE per step done
    stopped_early: bool
    seconds: float


class _Objective(torch.nn.Module):
    """Encoder + UNet in one module so DDP synchronises both through one forward call."""

    def __init__(self, encoder: EHREncoder, unet: LatentUNet) -> None:
        super().__init__()
        self.encoder, self.unet = encoder, unet

    def forward(
        self,
        batch: dict,
        diffusion: DiffusionConfig,
        schedule: DDPMSchedule,
        contrast_weight: float,
        label_weight: float,
        gen: torch.Generator,
    ):
        z1, z0, gap, tokens, labels = (
            batch["z1"],
            batch["z0"],
            batch["gap"],
            batch["tokens"],
            batch["labels"],
        )
        b = z1.shape[0]
        x = z1 if diffusion.target == "later" else (z1 - z0) / diffusion.residual_scale
        t = torch.randint(0, diffusion.timesteps, (b,), generator=gen).to(z1.device)
        noise = torch.randn(z1.shape, generator=gen).to(z1.device)
        z_t = schedule.q_sample(x, t, noise)
        ctx, mask, cls = self.encoder(tokens)
        drop = (torch.rand(b, generator=gen) < diffusion.ehr_dropout).to(z1.device)
        drop = drop | ~batch["has_ehr"]
        null_ctx, _ = self.unet.null(b)
        if drop.any():  # dropped rows see only the null token
            pad = null_ctx.expand(-1, ctx.shape[1], -1)
            ctx = torch.where(drop[:, None, None], pad, ctx)
            only_first = torch.zeros_like(mask)
            only_first[:, 0] = True
            mask = torch.where(drop[:, None], only_first, mask)
        pos = F.mse_loss(self.unet(z_t, z0, t, gap, ctx, mask), noise, reduction="none").mean(
            dim=(1, 2, 3)
        )
        loss = pos.mean()
        hinge = torch.zeros((), device=z1.device)
        keep = ~drop
        if contrast_weight > 0 and keep.any():
            ctx_neg = perturb_context(ctx[keep], diffusion.perturb_beta, gen)
            neg = F.mse_loss(
                self.unet(z_t[keep], z0[keep], t[keep], gap[keep], ctx_neg, mask[keep]),
                noise[keep],
                reduction="none",
            ).mean(dim=(1, 2, 3))
            hinge = F.relu(diffusion.contrastive_margin + pos[keep] - neg).mean()
            loss = loss + contrast_weight * diffusion.contrastive_weight * hinge
        label_loss = torch.zeros((), device=z1.device)
        logits = self.encoder.label_logits(cls)
        known = labels >= 0
        if logits is not None and known.any():
            label_loss = F.binary_cross_entropy_with_logits(logits[known, 0], labels[known].float())
            loss = loss + label_weight * label_loss
        return loss, pos.mean().detach(), hinge.detach(), label_loss.detach()


def train_forecaster(
    data: list[PairRecord] | LatentPairs,
    autoencoder: CXRAutoencoder,
    vocabulary: EHRVocabulary,
    config: ForecasterConfig,
    *,
    device: torch.device | str | None = None,
    callback: StepCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    init: DDLCXRForecaster | None = None,
) -> ForecasterTrainResult:
    """Train (or, from ``init``, fine-tune) the encoder and UNet on real pairs or latent pairs,
    on ``device`` (default: the autoencoder's). ``callback(step, total, mse)`` reports progress;
    ``should_stop()`` ends training early with the weights so far.

    A fine-tuned model keeps ``init``'s diffusion target and residual scale; a new residual model
    takes its scale from the data. The sampler defaults are fitted on the same data.
    """
    device = torch.device(device) if device is not None else autoencoder.device
    cfg, diffusion = config.train, config.diffusion
    if not isinstance(data, LatentPairs):
        data = pair_latents(data, autoencoder, vocabulary, config.encoder.max_tokens)
    if init is not None:
        diffusion = replace(
            diffusion, target=init.diffusion.target, residual_scale=init.diffusion.residual_scale
        )
    elif diffusion.target == "residual":
        diffusion = replace(diffusion, residual_scale=residual_scale(data))
    sampler = fit_sampler(data, diffusion, **config.sampler_defaults)
    # Dropout (the EHR encoder's) draws from torch's global generator: it gets its own stream.
    stream = GlobalStream(cfg.seed, device)
    with stream.active():
        encoder = EHREncoder(config.encoder).to(device)
        unet = LatentUNet(config.unet).to(device)
    if init is not None:
        encoder.load_state_dict(init.encoder.state_dict())
        unet.load_state_dict(init.unet.state_dict())
    objective = _Objective(encoder, unet)
    run = TrainingRun(cfg.steps, callback, should_stop)
    model = run.wrap(objective, device)
    schedule = diffusion.schedule()
    opt = torch.optim.AdamW(objective.parameters(), lr=cfg.lr, weight_decay=1e-4)
    gen = run.generator(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1000 * run.rank)
    shard = np.arange(len(data))[run.rank :: run.world]
    encoder.train()
    unet.train()
    for step in run.steps(cfg.steps):
        idx = rng.choice(
            shard, size=min(cfg.batch_size, len(shard)), replace=len(shard) < cfg.batch_size
        )
        batch = {
            "z1": data.z1[idx].to(device),
            "z0": data.z0[idx].to(device),
            "gap": data.gaps[idx].to(device),
            "tokens": data.tokens.take(idx).to(device),
            "labels": data.labels[idx].to(device),
            "has_ehr": data.has_ehr[idx].to(device),
        }
        with stream.active():
            loss, mse, hinge, label_loss = model(
                batch, diffusion, schedule, ramp(step + 1, cfg.ramp_steps), cfg.label_weight, gen
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), 1.0)
        opt.step()
        run.done(float(mse))
        if run.rank == 0 and (step + 1) % 250 == 0:
            log.info(
                "step %d/%d mse %.4f hinge %.4f label %.3f",
                step + 1,
                cfg.steps,
                mse,
                hinge,
                label_loss,
            )
    gaps_np = data.gaps.numpy()
    forecaster = DDLCXRForecaster(
        autoencoder,
        encoder.eval(),
        unet.eval(),
        vocabulary,
        diffusion,
        (float(np.floor(gaps_np.min())), float(np.ceil(gaps_np.max()))),
        sampler,
    )
    return ForecasterTrainResult(forecaster, np.asarray(run.losses), run.stopped, run.seconds)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.cxr.train_forecaster", description=__doc__)
    p.add_argument("--vae", type=Path, required=True, help="VAE checkpoint folder")
    p.add_argument("--hannover-root", type=Path, default=None)
    p.add_argument("--mimic-metadata", type=Path, default=None)
    p.add_argument("--mimic-ehr", type=Path, default=None)
    p.add_argument("--mimic-images", type=Path, default=None)
    p.add_argument(
        "--pretrain-images",
        type=Path,
        action="append",
        default=None,
        help="image folder(s) for pseudo-pair pretraining instead of real pairs",
    )
    p.add_argument("--views-per-image", type=int, default=2)
    p.add_argument("--init", type=Path, default=None, help="checkpoint to fine-tune from")
    p.add_argument("--target", choices=TARGETS, default="later")
    p.add_argument("--anchor", choices=ANCHORS, default="noise", help="sampler default")
    p.add_argument("--strength", type=float, default=2.0, help="sampler default anchor strength")
    p.add_argument("--eta", type=float, default=1.0, help="sampler default DDIM eta")
    p.add_argument(
        "--leave-out-example",
        action="store_true",
        help="leave the shipped example's patient out of training (core.cxr.example)",
    )
    p.add_argument(
        "--validation",
        type=Path,
        default=None,
        help="JSON written by `core.cxr.evaluate --folds --json`: its verdict goes in the manifest",
    )
    add_split_arguments(p)
    train = ForecasterTrainConfig()
    add_run_arguments(p, steps=train.steps, batch_size=train.batch_size, lr=train.lr)
    p.add_argument("--ramp-steps", type=int, default=train.ramp_steps)
    p.add_argument("--base-channels", type=int, default=64)
    p.add_argument("--channel-mult", default="1,2")
    p.add_argument("--attention-levels", default="1")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--ehr-layers", type=int, default=2)
    return p


def config_from_args(
    args: argparse.Namespace, autoencoder: CXRAutoencoder, init: DDLCXRForecaster | None
) -> ForecasterConfig:
    """The training the flags ask for; a fine-tuning (``--init``) keeps the networks' shapes of
    the model it starts from. Pretraining takes no sampler defaults (fine-tuning sets them)."""
    variables = init.vocabulary.variables if init is not None else HANNOVER_LABS
    encoder = (
        init.encoder.cfg
        if init is not None
        else EHREncoderConfig(
            n_variables=len(variables), d_model=args.d_model, n_layers=args.ehr_layers
        )
    )
    unet = (
        init.unet.cfg
        if init is not None
        else UNetConfig(
            latent_channels=autoencoder.vae.cfg.latent_channels,
            base_channels=args.base_channels,
            channel_mult=tuple(int(c) for c in args.channel_mult.split(",")),
            attention_levels=tuple(int(c) for c in args.attention_levels.split(",") if c),
            context_dim=args.d_model,
        )
    )
    train = ForecasterTrainConfig(
        args.steps, args.batch_size, args.lr, args.ramp_steps, seed=args.seed
    )
    sampler = {} if args.pretrain_images else {
        "anchor": args.anchor, "strength": args.strength, "eta": args.eta,
    }  # fmt: skip
    return ForecasterConfig(encoder, unet, DiffusionConfig(target=args.target), train, sampler)


def load_pairs(args: argparse.Namespace) -> tuple[list[PairRecord], tuple[str, ...], dict]:
    if args.hannover_root is not None:
        return hannover_pairs(args.hannover_root), HANNOVER_LABS, DATASET_CARDS["cxr-hannover"]
    if args.mimic_metadata and args.mimic_ehr and args.mimic_images:
        return (
            mimic_pairs(args.mimic_metadata, args.mimic_ehr, args.mimic_images),
            MEDFUSE_VARIABLES,
            DATASET_CARDS["mimic"],
        )
    raise SystemExit(
        "give --hannover-root, or all of --mimic-metadata, --mimic-ehr, --mimic-images"
    )


def _pretrain(
    args: argparse.Namespace,
    autoencoder: CXRAutoencoder,
    config: ForecasterConfig,
    callback: StepCallback,
) -> tuple[ForecasterTrainResult, dict]:
    paths = [p for folder in args.pretrain_images for p, _ in image_folder(folder)]
    vocab = EHRVocabulary.fit([], HANNOVER_LABS)  # no EHR in pseudo-pairs; refit at fine-tuning
    data = pseudo_pair_latents(
        paths,
        autoencoder,
        vocab,
        config.encoder.max_tokens,
        views_per_image=args.views_per_image,
        gap_range_hours=PSEUDO_GAP_RANGE_HOURS,
        seed=args.seed,
    )
    log.info("%d pseudo-pairs from %d images", len(data), len(paths))
    result = train_forecaster(data, autoencoder, vocab, config, callback=callback)
    card = {
        "datasets": dataset_cards(args.pretrain_images),
        "pseudo_pairs": len(data),
        "images": len(paths),
        "views_per_image": args.views_per_image,
    }
    return result, card


def _finetune_or_train(
    args: argparse.Namespace,
    autoencoder: CXRAutoencoder,
    config: ForecasterConfig,
    init: DDLCXRForecaster | None,
    callback: StepCallback,
) -> tuple[ForecasterTrainResult, dict]:
    pairs, variables, dataset = load_pairs(args)
    held = holdout_patients([p.patient_id for p in pairs], args.holdout, args.split_seed)
    left_out: set[str] = set()
    if args.leave_out_example:
        left_out = {example_pair(pairs).patient_id}
    train = [p for p in pairs if p.patient_id not in held | left_out]
    vocab = EHRVocabulary.fit([p.window for p in train], variables)
    result = train_forecaster(train, autoencoder, vocab, config, callback=callback, init=init)
    card = {
        "datasets": [dataset],
        "pairs_train": len(train),
        "patients_train": len({p.patient_id for p in train}),
        "pairs_holdout": sum(p.patient_id in held for p in pairs),
        "patients_holdout": len(held),
        "example_patient_left_out": bool(left_out),
        "split": split_card(args),
        "gap_hours_range": list(result.model.gap_range_hours),
    }
    if init is not None:
        card["pretrained_from"] = {
            "checkpoint": args.init.name,
            "sha256": init.manifest.sha256,
            "data_card": init.manifest.data_card,
        }
    return result, card


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with training_command("core.cxr.train_forecaster", argv, args.out, args.device) as command:
        _train_and_save(args, command)
    return 0


def _train_and_save(args: argparse.Namespace, command: TrainingCommand) -> None:
    autoencoder = CXRAutoencoder.load(args.vae, command.device)
    init = DDLCXRForecaster.load(args.init, command.device, args.vae) if args.init else None
    config = config_from_args(args, autoencoder, init)
    report = command.log_every(500)
    if args.pretrain_images:
        result, card = _pretrain(args, autoencoder, config, report)
    else:
        result, card = _finetune_or_train(args, autoencoder, config, init, report)
    if not command.writes:
        return
    metrics = {"final_mse": round(float(result.losses[-100:].mean()), 4)}
    if args.validation is not None:
        metrics["crossvalidation"] = json.loads(args.validation.read_text())["crossvalidation"]
    vae_sha256 = autoencoder.manifest.sha256
    command.export(
        lambda out, **card_and_metrics: result.model.save(
            out, args.vae, vae_sha256, **card_and_metrics
        ),
        args.out,
        data_card=card,
        metrics=metrics,
        seconds=result.seconds,
    )


if __name__ == "__main__":
    raise SystemExit(main())
