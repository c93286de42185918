"""Train the DDL-CXR forecaster on longitudinal pairs in a trained VAE's latent space.

``python -m core.cxr.train_forecaster --vae checkpoints/cxr-vae-64 --hannover-root DIR --out DIR``
(or ``--mimic-metadata/--mimic-ehr/--mimic-images`` for the MIMIC-CXR-JPG + MIMIC-IV layout).
Objective per batch: epsilon MSE with the true EHR context, plus the contrastive hinge
``max(0, margin + L(E) - L(E'))`` against ``E' = (1 - beta) E + beta * noise`` with its weight
ramped 0 -> 1, plus the EHR encoder's auxiliary outcome loss. The EHR context is dropped with a
small probability so the same network also serves as the "no EHR" model.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.checkpoints import read_manifest
from core.cxr.data import (
    DATASET_CARDS,
    HANNOVER_LABS,
    MEDFUSE_VARIABLES,
    PairRecord,
    hannover_pairs,
    holdout_patients,
    load_images,
    mimic_pairs,
)
from core.cxr.diffusion import DiffusionConfig, Schedule, perturb_context, ramp
from core.cxr.ehr_encoder import EHREncoder, EHREncoderConfig
from core.cxr.ehr_window import EHRVocabulary, tokens_from_windows
from core.cxr.pipeline import CXRAutoencoder, DDLCXRForecaster
from core.cxr.unet import LatentUNet, UNetConfig
from core.device import make_generator
from core.distributed import command_line, training_processes, wrap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForecasterTrainConfig:
    steps: int = 4000
    batch_size: int = 32
    lr: float = 2e-4
    ramp_steps: int = 1000
    label_weight: float = 0.1
    seed: int = 0


class _Objective(torch.nn.Module):
    """Encoder + UNet in one module so DDP synchronises both through one forward call."""

    def __init__(self, encoder: EHREncoder, unet: LatentUNet) -> None:
        super().__init__()
        self.encoder, self.unet = encoder, unet

    def forward(
        self,
        batch: dict,
        diffusion: DiffusionConfig,
        schedule: Schedule,
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
        t = torch.randint(0, diffusion.timesteps, (b,), generator=gen).to(z1.device)
        noise = torch.randn(z1.shape, generator=gen).to(z1.device)
        z_t = schedule.q_sample(z1, t, noise)
        ctx, mask, cls = self.encoder(tokens)
        drop = (torch.rand(b, generator=gen) < diffusion.ehr_dropout).to(z1.device)
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
    callback: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled latents of every pair's prior and later image (each image encoded once)."""
    paths = sorted({p.prior for p in pairs} | {p.later for p in pairs})
    images = load_images(paths, autoencoder.size, autoencoder.fit, callback) / 255.0
    latents = torch.cat([autoencoder.encode(images[i : i + 64]) for i in range(0, len(images), 64)])
    row = {p: i for i, p in enumerate(paths)}
    z0 = latents[[row[p.prior] for p in pairs]]
    z1 = latents[[row[p.later] for p in pairs]]
    return z0, z1


def train_forecaster(
    pairs: list[PairRecord],
    autoencoder: CXRAutoencoder,
    vocabulary: EHRVocabulary,
    encoder_cfg: EHREncoderConfig,
    unet_cfg: UNetConfig,
    diffusion: DiffusionConfig,
    cfg: ForecasterTrainConfig,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    callback: Callable[[int, int, float], None] | None = None,
) -> tuple[DDLCXRForecaster, np.ndarray]:
    torch.manual_seed(cfg.seed)
    z0, z1 = latent_pairs(pairs, autoencoder)
    tokens = tokens_from_windows([p.window for p in pairs], vocabulary, encoder_cfg.max_tokens)
    gaps = torch.tensor([p.gap_hours for p in pairs], dtype=torch.float32)
    labels = torch.tensor([p.label for p in pairs], dtype=torch.long)
    encoder, unet = EHREncoder(encoder_cfg).to(device), LatentUNet(unet_cfg).to(device)
    objective = _Objective(encoder, unet)
    model = wrap(objective, device, world)
    schedule = Schedule(diffusion)
    opt = torch.optim.AdamW(objective.parameters(), lr=cfg.lr, weight_decay=1e-4)
    gen = make_generator(cfg.seed + rank)
    rng = np.random.default_rng(cfg.seed + rank)
    shard = np.arange(len(pairs))[rank::world]
    losses = np.zeros(cfg.steps)
    for step in range(1, cfg.steps + 1):
        idx = rng.choice(
            shard, size=min(cfg.batch_size, len(shard)), replace=len(shard) < cfg.batch_size
        )
        batch = {
            "z1": z1[idx].to(device),
            "z0": z0[idx].to(device),
            "gap": gaps[idx].to(device),
            "tokens": tokens.take(idx).to(device),
            "labels": labels[idx].to(device),
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
    gaps_np = gaps.numpy()
    forecaster = DDLCXRForecaster(
        autoencoder,
        encoder.eval(),
        unet.eval(),
        vocabulary,
        diffusion,
        (float(gaps_np.min()), float(gaps_np.max())),
    )
    return forecaster, losses


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vae", type=Path, required=True, help="VAE checkpoint folder")
    p.add_argument("--hannover-root", type=Path, default=None)
    p.add_argument("--mimic-metadata", type=Path, default=None)
    p.add_argument("--mimic-ehr", type=Path, default=None)
    p.add_argument("--mimic-images", type=Path, default=None)
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pairs, variables, dataset = load_pairs(args)
    held = holdout_patients([p.patient_id for p in pairs], args.holdout, args.split_seed)
    train = [p for p in pairs if p.patient_id not in held]
    with training_processes(args.device) as (device, rank, world):
        autoencoder, _ = CXRAutoencoder.load(args.vae, device)
        vocab = EHRVocabulary.fit([p.window for p in train], variables)
        enc_cfg = EHREncoderConfig(
            n_variables=len(variables), d_model=args.d_model, n_layers=args.ehr_layers
        )
        unet_cfg = UNetConfig(
            latent_channels=autoencoder.vae.cfg.latent_channels,
            base_channels=args.base_channels,
            channel_mult=tuple(int(c) for c in args.channel_mult.split(",")),
            attention_levels=tuple(int(c) for c in args.attention_levels.split(",") if c),
            context_dim=args.d_model,
        )
        cfg = ForecasterTrainConfig(
            args.steps, args.batch_size, args.lr, args.ramp_steps, seed=args.seed
        )
        start = time.perf_counter()
        forecaster, losses = train_forecaster(
            train,
            autoencoder,
            vocab,
            enc_cfg,
            unet_cfg,
            DiffusionConfig(),
            cfg,
            device,
            rank,
            world,
        )
        seconds = time.perf_counter() - start
        if rank == 0:
            card = {
                "datasets": [dataset],
                "pairs_train": len(train),
                "patients_train": len({p.patient_id for p in train}),
                "pairs_holdout": len(pairs) - len(train),
                "patients_holdout": len(held),
                "split": {"holdout": args.holdout, "seed": args.split_seed, "patient_level": True},
                "gap_hours_range": list(forecaster.gap_range_hours),
            }
            metrics = {
                "final_mse": round(float(losses[-100:].mean()), 4),
                "train_seconds": round(seconds, 1),
                "processes": world,
                "device": str(device),
            }
            forecaster.save(
                args.out,
                args.vae,
                read_manifest(args.vae).sha256,
                data_card=card,
                training_command=command_line("core.cxr.train_forecaster", argv, world),
                metrics=metrics,
            )
            log.info("wrote %s: %s", args.out, metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
