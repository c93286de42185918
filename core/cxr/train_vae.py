"""Train the CXR VAE: ``python -m core.cxr.train_vae --images DIR [--images DIR ...] --out DIR``.

Hannover images of held-out patients are excluded (``--hannover-root`` with the same split seed
as the forecaster), so evaluation pairs are unseen by every part of the model.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.cli import add_run_arguments, add_split_arguments, split_card
from core.cxr.data import dataset_cards, holdout_patients, image_folder, load_images
from core.cxr.pipeline import CXRAutoencoder
from core.cxr.vae import CXRVAE, CXRVAEConfig
from core.device import seeded_construction
from core.metrics.images import psnr, ssim
from core.training import TrainingRun, training_command

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.cxr.train_vae", description=__doc__)
    p.add_argument("--images", action="append", required=True, help="folder of images (repeatable)")
    p.add_argument("--hannover-root", default=None, help="exclude held-out Hannover patients")
    add_split_arguments(p)
    add_run_arguments(p, steps=3000, batch_size=32, lr=1e-3)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--base-channels", type=int, default=32)
    p.add_argument("--channel-mult", default="1,2,2,4")
    p.add_argument("--latent-channels", type=int, default=4)
    p.add_argument("--fit", choices=("pad", "crop"), default="pad")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = CXRVAEConfig(
        image_size=args.image_size,
        base_channels=args.base_channels,
        channel_mult=tuple(int(c) for c in args.channel_mult.split(",")),
        latent_channels=args.latent_channels,
    )
    cfg.validate()
    excluded: set[str] = set()
    if args.hannover_root:
        table = pd.read_csv(Path(args.hannover_root) / "data.csv", dtype=str)
        held = holdout_patients(table["patient_id"], args.holdout, args.split_seed)
        excluded = set(table.loc[table["patient_id"].isin(held), "image_id"])
    items = []
    for folder in args.images:
        items += [(p, lab) for p, lab in image_folder(folder) if p.stem not in excluded]
    paths = [p for p, _ in items]
    labels = torch.tensor([lab for _, lab in items], dtype=torch.float32)[:, None]
    with training_command("core.cxr.train_vae", argv, args.out, args.device) as command:
        device = command.device
        start = time.perf_counter()
        images = load_images(paths, cfg.image_size, args.fit)
        log.info(
            "cached %d images at %d px in %.0f s",
            len(paths),
            cfg.image_size,
            time.perf_counter() - start,
        )
        rng = np.random.default_rng(args.seed)
        val_idx = rng.choice(len(paths), size=min(256, len(paths) // 10), replace=False)
        train_idx = np.setdiff1d(np.arange(len(paths)), val_idx)
        with seeded_construction(args.seed):  # the VAE draws no noise of its own later
            vae = CXRVAE(cfg).to(device)
        run = TrainingRun(args.steps)
        model = run.wrap(vae, device)
        opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, args.lr, total_steps=args.steps, pct_start=0.05
        )
        gen = run.generator(args.seed)
        shard = train_idx[run.rank :: run.world]
        for step in (s + 1 for s in run.steps(args.steps)):
            batch = rng.choice(shard, size=args.batch_size)
            x = (
                torch.as_tensor(images[batch], dtype=torch.float32, device=device)[:, None] / 127.5
                - 1
            )
            losses = model(x, labels[batch].to(device), gen)  # DDP syncs grads via forward
            opt.zero_grad(set_to_none=True)
            losses.total.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            opt.step()
            sched.step()
            run.done(float(losses.total.detach()))
            if command.writes and (step % 100 == 0 or step == args.steps):
                log.info(
                    "step %d/%d loss %.4f l1 %.4f 1-ssim %.4f kl %.1f label %.3f (%.1f s)",
                    step,
                    args.steps,
                    losses.total,
                    losses.l1,
                    losses.ssim,
                    losses.kl,
                    losses.label,
                    run.seconds,
                )
        if command.writes:
            vae.eval()
            ae = CXRAutoencoder(vae, args.fit, 1.0)
            with torch.no_grad():
                lat = torch.cat(
                    [
                        ae.encode(images[train_idx[i : i + 256]] / 255.0)
                        for i in range(0, min(len(train_idx), 2048), 256)
                    ]
                )
            ae.latent_scale = round(float(1.0 / lat.std()), 5)
            val = images[val_idx] / 255.0
            recon = ae.decode(ae.encode(val))
            metrics = {
                "validation_images": len(val_idx),
                "reconstruction_ssim": round(
                    float(np.mean([ssim(a, b) for a, b in zip(val, recon, strict=True)])), 4
                ),
                "reconstruction_psnr_db": round(
                    float(np.mean([psnr(a, b) for a, b in zip(val, recon, strict=True)])), 2
                ),
            }
            card = {
                "datasets": dataset_cards(args.images),
                "images_train": len(train_idx),
                "images_validation": len(val_idx),
                "hannover_holdout_patients_excluded": len(excluded) > 0,
                "split": split_card(args),
            }
            command.export(ae.save, args.out, data_card=card, metrics=metrics, seconds=run.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
