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
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.checkpoints import read_manifest
from core.cli import claim_output, export_trained, split_card
from core.cxr.augment import random_views
from core.cxr.data import (
    DATASET_CARDS,
    HANNOVER_LABS,
    MEDFUSE_VARIABLES,
    PairRecord,
    dataset_cards,
    empty_window,
    example_pair,
    hannover_pairs,
    holdout_patients,
    image_folder,
    load_images,
    mimic_pairs,
)
from core.cxr.diffusion import (
    ANCHORS,
    TARGETS,
    DiffusionConfig,
    SamplerConfig,
    perturb_context,
    ramp,
)
from core.cxr.ehr_encoder import EHREncoder, EHREncoderConfig, EHRTokens
from core.cxr.ehr_window import EHRVocabulary, tokens_from_windows
from core.cxr.pipeline import CXRAutoencoder, DDLCXRForecaster
from core.cxr.unet import LatentUNet, UNetConfig
from core.device import make_generator
from core.diffusion.ddpm import DDPMSchedule
from core.distributed import command_line, training_processes, wrap
from core.progress import ProgressCallback, StepCallback

log = logging.getLogger(__name__)

PSEUDO_GAP_RANGE_HOURS = (24.0, 24.0 * 22)  # view changes do not depend on the gap: any in range


@dataclass(frozen=True)
class ForecasterTrainConfig:
    steps: int = 4000
    batch_size: int = 32
    lr: float = 2e-4
    ramp_steps: int = 1000
    label_weight: float = 0.1
    seed: int = 0


@dataclass
class LatentPairs:
    """Training examples in latent space; ``has_ehr`` False rows always see the null context."""

    z0: torch.Tensor
    z1: torch.Tensor
    gaps: torch.Tensor
    tokens: EHRTokens
    labels: torch.Tensor
    has_ehr: torch.Tensor

    def __len__(self) -> int:
        return len(self.z0)


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


def latent_pairs(
    pairs: list[PairRecord],
    autoencoder: CXRAutoencoder,
    callback: ProgressCallback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled latents of every pair's prior and later image (each image encoded once)."""
    paths = sorted({p.prior for p in pairs} | {p.later for p in pairs})
    images = load_images(paths, autoencoder.size, autoencoder.fit, callback) / 255.0
    latents = torch.cat([autoencoder.encode(images[i : i + 64]) for i in range(0, len(images), 64)])
    row = {p: i for i, p in enumerate(paths)}
    z0 = latents[[row[p.prior] for p in pairs]]
    z1 = latents[[row[p.later] for p in pairs]]
    return z0, z1


def pair_latents(
    pairs: list[PairRecord], autoencoder: CXRAutoencoder, vocabulary: EHRVocabulary, max_tokens: int
) -> LatentPairs:
    z0, z1 = latent_pairs(pairs, autoencoder)
    return LatentPairs(
        z0,
        z1,
        torch.tensor([p.gap_hours for p in pairs], dtype=torch.float32),
        tokens_from_windows([p.window for p in pairs], vocabulary, max_tokens),
        torch.tensor([p.label for p in pairs], dtype=torch.long),
        torch.ones(len(pairs), dtype=torch.bool),
    )


def pseudo_pair_latents(
    paths: list[Path],
    autoencoder: CXRAutoencoder,
    vocabulary: EHRVocabulary,
    max_tokens: int,
    *,
    views_per_image: int,
    gap_range_hours: tuple[float, float],
    seed: int,
) -> LatentPairs:
    """Two independent random views of each image per round (``core.cxr.augment``), no EHR,
    gaps drawn log-uniformly over ``gap_range_hours`` (view changes do not depend on the gap)."""
    gen = make_generator(seed)
    images = torch.as_tensor(
        load_images(paths, 2 * autoencoder.size, autoencoder.fit), dtype=torch.float32
    )
    z0s, z1s = [], []
    for _ in range(views_per_image):
        for i in range(0, len(images), 128):
            chunk = images[i : i + 128] / 255.0
            z0s.append(autoencoder.encode(random_views(chunk, autoencoder.size, gen)))
            z1s.append(autoencoder.encode(random_views(chunk, autoencoder.size, gen)))
    n = sum(len(z) for z in z0s)
    lo, hi = np.log(gap_range_hours[0]), np.log(gap_range_hours[1])
    gaps = torch.exp(lo + (hi - lo) * torch.rand(n, generator=gen))
    return LatentPairs(
        torch.cat(z0s).cpu(),
        torch.cat(z1s).cpu(),
        gaps,
        tokens_from_windows([empty_window()] * n, vocabulary, max_tokens),
        torch.full((n,), -1, dtype=torch.long),
        torch.zeros(n, dtype=torch.bool),
    )


def fit_sampler(data: LatentPairs, diffusion: DiffusionConfig, **defaults: object) -> SamplerConfig:
    """Sampler defaults fitted on training pairs: the RMS latent change against log gap (for the
    prior-anchored start) and the targets' 99.9th percentile of ``|x|`` (for thresholding)."""
    change = (data.z1 - data.z0).pow(2).mean(dim=(1, 2, 3)).sqrt().numpy()
    log_gap = np.log(np.maximum(data.gaps.numpy(), 1.0))
    a, b = float(change.mean()), 0.0
    if len(change) >= 3 and np.ptp(log_gap) > 0:
        slope, intercept = np.polyfit(log_gap, change, 1)
        if slope > 0:  # change cannot shrink with the gap; a negative fit is noise
            a, b = float(intercept), float(slope)
    x = data.z1 if diffusion.target == "later" else (data.z1 - data.z0) / diffusion.residual_scale
    bound = float(torch.quantile(x.abs().flatten()[:2_000_000], 0.999))
    return SamplerConfig(
        **{"x0_bound": round(bound, 4), "change_rms": (round(float(a), 5), round(float(b), 5))}
        | defaults  # type: ignore[arg-type]
    )


def residual_scale(data: LatentPairs) -> float:
    return round(float((data.z1 - data.z0).pow(2).mean().sqrt()), 5)


def train_forecaster(
    data: list[PairRecord] | LatentPairs,
    autoencoder: CXRAutoencoder,
    vocabulary: EHRVocabulary,
    encoder_cfg: EHREncoderConfig,
    unet_cfg: UNetConfig,
    diffusion: DiffusionConfig,
    cfg: ForecasterTrainConfig,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    callback: StepCallback | None = None,
    init: DDLCXRForecaster | None = None,
    sampler_defaults: dict | None = None,
) -> tuple[DDLCXRForecaster, np.ndarray]:
    """Train (or, from ``init``, fine-tune) the encoder and UNet on real pairs or latent pairs.

    A fine-tuned model keeps ``init``'s diffusion target and residual scale; a new residual model
    takes its scale from the data. The sampler defaults are fitted on the same data.
    """
    if not isinstance(data, LatentPairs):
        data = pair_latents(data, autoencoder, vocabulary, encoder_cfg.max_tokens)
    if init is not None:
        diffusion = replace(
            diffusion, target=init.diffusion.target, residual_scale=init.diffusion.residual_scale
        )
    elif diffusion.target == "residual":
        diffusion = replace(diffusion, residual_scale=residual_scale(data))
    sampler = fit_sampler(data, diffusion, **(sampler_defaults or {}))
    torch.manual_seed(cfg.seed)
    encoder, unet = EHREncoder(encoder_cfg).to(device), LatentUNet(unet_cfg).to(device)
    if init is not None:
        encoder.load_state_dict(init.encoder.state_dict())
        unet.load_state_dict(init.unet.state_dict())
    objective = _Objective(encoder, unet)
    model = wrap(objective, device, world)
    schedule = diffusion.schedule()
    opt = torch.optim.AdamW(objective.parameters(), lr=cfg.lr, weight_decay=1e-4)
    gen = make_generator(cfg.seed + rank)
    rng = np.random.default_rng(cfg.seed + rank)
    shard = np.arange(len(data))[rank::world]
    losses = np.zeros(cfg.steps)
    encoder.train()
    unet.train()
    for step in range(1, cfg.steps + 1):
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
        loss, mse, hinge, label_loss = model(
            batch, diffusion, schedule, ramp(step, cfg.ramp_steps), cfg.label_weight, gen
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), 1.0)
        opt.step()
        losses[step - 1] = float(mse)
        if callback is not None:
            callback(step, cfg.steps, float(mse))
        if rank == 0 and step % 250 == 0:
            log.info(
                "step %d/%d mse %.4f hinge %.4f label %.3f", step, cfg.steps, mse, hinge, label_loss
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
    return forecaster, losses


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
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
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--ramp-steps", type=int, default=1000)
    p.add_argument("--base-channels", type=int, default=64)
    p.add_argument("--channel-mult", default="1,2")
    p.add_argument("--attention-levels", default="1")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--ehr-layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    return p


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
    args: argparse.Namespace, autoencoder: CXRAutoencoder, model_cfgs: tuple, device, rank, world
) -> tuple[DDLCXRForecaster, np.ndarray, dict]:
    enc_cfg, unet_cfg, cfg = model_cfgs
    paths = [p for folder in args.pretrain_images for p, _ in image_folder(folder)]
    vocab = EHRVocabulary.fit([], HANNOVER_LABS)  # no EHR in pseudo-pairs; refit at fine-tuning
    data = pseudo_pair_latents(
        paths,
        autoencoder,
        vocab,
        enc_cfg.max_tokens,
        views_per_image=args.views_per_image,
        gap_range_hours=PSEUDO_GAP_RANGE_HOURS,
        seed=args.seed,
    )
    log.info("%d pseudo-pairs from %d images", len(data), len(paths))
    forecaster, losses = train_forecaster(
        data, autoencoder, vocab, enc_cfg, unet_cfg, DiffusionConfig(target=args.target), cfg,
        device, rank, world,
    )  # fmt: skip
    card = {
        "datasets": dataset_cards(args.pretrain_images),
        "pseudo_pairs": len(data),
        "images": len(paths),
        "views_per_image": args.views_per_image,
    }
    return forecaster, losses, card


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    _out = claim_output(args.out)  # a second training into --out is refused
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with training_processes(args.device) as (device, rank, world):
        autoencoder = CXRAutoencoder.load(args.vae, device)
        init = DDLCXRForecaster.load(args.init, device, args.vae) if args.init else None
        variables = init.vocabulary.variables if init is not None else HANNOVER_LABS
        enc_cfg = (
            init.encoder.cfg
            if init is not None
            else EHREncoderConfig(
                n_variables=len(variables), d_model=args.d_model, n_layers=args.ehr_layers
            )
        )
        unet_cfg = (
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
        cfg = ForecasterTrainConfig(
            args.steps, args.batch_size, args.lr, args.ramp_steps, seed=args.seed
        )
        start = time.perf_counter()
        if args.pretrain_images:
            forecaster, losses, card = _pretrain(
                args, autoencoder, (enc_cfg, unet_cfg, cfg), device, rank, world
            )
        else:
            pairs, variables, dataset = load_pairs(args)
            held = holdout_patients([p.patient_id for p in pairs], args.holdout, args.split_seed)
            left_out: set[str] = set()
            if args.leave_out_example:
                left_out = {example_pair(pairs).patient_id}
            train = [p for p in pairs if p.patient_id not in held | left_out]
            vocab = EHRVocabulary.fit([p.window for p in train], variables)
            forecaster, losses = train_forecaster(
                train,
                autoencoder,
                vocab,
                enc_cfg,
                unet_cfg,
                DiffusionConfig(target=args.target),
                cfg,
                device,
                rank,
                world,
                init=init,
                sampler_defaults={
                    "anchor": args.anchor,
                    "strength": args.strength,
                    "eta": args.eta,
                },
            )
            card = {
                "datasets": [dataset],
                "pairs_train": len(train),
                "patients_train": len({p.patient_id for p in train}),
                "pairs_holdout": sum(p.patient_id in held for p in pairs),
                "patients_holdout": len(held),
                "example_patient_left_out": bool(left_out),
                "split": split_card(args),
                "gap_hours_range": list(forecaster.gap_range_hours),
            }
            if init is not None:
                card["pretrained_from"] = {
                    "checkpoint": args.init.name,
                    "sha256": read_manifest(args.init).sha256,
                    "data_card": read_manifest(args.init).data_card,
                }
        seconds = time.perf_counter() - start
        if rank == 0:
            metrics = {
                "final_mse": round(float(losses[-100:].mean()), 4),
            }
            if args.validation is not None:
                metrics["crossvalidation"] = json.loads(args.validation.read_text())[
                    "crossvalidation"
                ]
            export_trained(
                lambda out, **card_and_metrics: forecaster.save(
                    out, args.vae, read_manifest(args.vae).sha256, **card_and_metrics
                ),
                args.out,
                data_card=card,
                command=command_line("core.cxr.train_forecaster", argv, world),
                metrics=metrics,
                seconds=seconds,
                world=world,
                device=device,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
