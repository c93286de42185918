"""Patient-level k-fold cross-validation of DDL-CXR forecasters (``core.cxr.evaluate --folds``).

Every patient with a pair is held out exactly once; in each fold one model per diffusion target
is fine-tuned from its pretrained checkpoint (``--init target=DIR``) on the other folds' patients
and evaluated on the held-out ones with every sampling variant below, on the same pairs and
seeds. Per-fold results are cached in ``--work`` so an interrupted run resumes.

Variants: (a) the original sampler (pure-noise start, prior by concatenation only, eta 1, no
thresholding); (b) a start from the prior's latent noised to a horizon-dependent level
(SDEdit); (c) a residual model (denoises the change from the prior), started from noise or from
"no change" noised the same way. The prior-anchored ones also with eta 0 (thresholded), with a
lower start (strength 1 instead of the default 2), without EHR and with a shuffled EHR window.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from core.cxr.data import HANNOVER_LABS, PairRecord, hannover_pairs, patient_folds
from core.cxr.diffusion import DiffusionConfig
from core.cxr.ehr_window import EHRVocabulary
from core.cxr.evaluate import (
    CARRY,
    CEILING,
    Variant,
    evaluate_pairs,
    summarise,
    summary_json,
    summary_markdown,
)
from core.cxr.outcomes import outcome_table
from core.cxr.pipeline import CXRAutoencoder, DDLCXRForecaster
from core.cxr.train_forecaster import ForecasterConfig, ForecasterTrainConfig, train_forecaster
from core.markdown import markdown_table
from core.metrics.bootstrap import cluster_resamples, percentile_ci

log = logging.getLogger(__name__)

VARIANTS: dict[str, tuple[Variant, ...]] = {
    "later": (
        Variant("(a) noise start", "noise", 1.0, threshold=False),
        Variant("(a) noise start, eta 0", "noise", 0.0, threshold=False),
        Variant("(a) noise start, eta 0, thresholded", "noise", 0.0),
        Variant("(b) prior start", "prior", 1.0),
        Variant("(b) prior start, eta 0", "prior", 0.0),
        Variant("(b) prior start, strength 1", "prior", 1.0, strength=1.0),
        Variant("(b) prior start, no EHR", "prior", 1.0, ehr="none"),
        Variant("(b) prior start, shuffled EHR", "prior", 1.0, ehr="shuffled"),
    ),
    "residual": (
        Variant("(c) residual, noise start", "noise", 1.0),
        Variant("(c) residual, prior start", "prior", 1.0),
        Variant("(c) residual, prior start, eta 0", "prior", 0.0),
        Variant("(c) residual, prior start, strength 1", "prior", 1.0, strength=1.0),
        Variant("(c) residual, prior start, no EHR", "prior", 1.0, ehr="none"),
        Variant("(c) residual, prior start, shuffled EHR", "prior", 1.0, ehr="shuffled"),
    ),
}


def crossvalidate(
    pairs: list[PairRecord],
    autoencoder: CXRAutoencoder,
    inits: dict[str, DDLCXRForecaster],
    folds: list[set[str]],
    train_cfg: ForecasterTrainConfig,
    *,
    samples: int,
    steps: int,
    seed: int,
    work: Path | None = None,
    variables: tuple[str, ...] = HANNOVER_LABS,
) -> pd.DataFrame:
    """Per-pair rows of every fold, target and variant (carry-forward and ceiling once)."""
    parts = []
    for k, held in enumerate(folds):
        test_keys = [i for i, p in enumerate(pairs) if p.patient_id in held]
        train = [p for p in pairs if p.patient_id not in held]
        for target, init in inits.items():
            cache = work / f"fold{k}-{target}.parquet" if work is not None else None
            if cache is not None and cache.exists():
                parts.append(_read_cache(cache))
                log.info("fold %d/%d %s: cached", k + 1, len(folds), target)
                continue
            start = time.perf_counter()
            vocab = EHRVocabulary.fit([p.window for p in train], variables)
            config = ForecasterConfig(init.encoder.cfg, init.unet.cfg, DiffusionConfig(), train_cfg)
            model = train_forecaster(train, autoencoder, vocab, config, init=init).model
            trained = time.perf_counter() - start
            rows = evaluate_pairs(
                model,
                [pairs[i] for i in test_keys],
                VARIANTS[target],
                samples=samples,
                steps=steps,
                seed=seed,
                fold=k,
                keys=test_keys,
            )
            log.info(
                "fold %d/%d %s: %d train / %d test pairs, trained in %.0f s, evaluated in %.0f s",
                k + 1,
                len(folds),
                target,
                len(train),
                len(test_keys),
                trained,
                time.perf_counter() - start - trained,
            )
            if cache is not None:
                _write_cache(rows, cache)
            parts.append(rows)
    out = pd.concat(parts, ignore_index=True)
    baseline = out["method"].isin([CARRY, CEILING])
    return out[~baseline | ~out.duplicated(["pair", "method"])].reset_index(drop=True)


_ARRAYS = ("z", "z_mean", "z_true", "z_prior")


def _write_cache(rows: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = rows.copy()
    for col in _ARRAYS:
        frame[col] = [np.asarray(v, np.float64).tolist() for v in frame[col]]
    frame.to_parquet(path, index=False)


def _read_cache(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    for col in _ARRAYS:
        frame[col] = [np.asarray(v, np.float64) for v in frame[col]]
    return frame


def _outcome_markdown(table: pd.DataFrame) -> str:
    def fmt(v, ci):
        if not np.isfinite(v):
            return ""
        return f"{v:+.3f} ({ci[0]:+.3f} to {ci[1]:+.3f})" if np.isfinite(ci[0]) else f"{v:.3f}"

    shown = pd.DataFrame(
        {
            "outcome": table["outcome"],
            "features": table["features"],
            "pairs": table["pairs"],
            "positive patients": table["positive patients"],
            "AUROC (95% CI)": [
                "" if not np.isfinite(v) else f"{v:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"
                for v, ci in zip(table["AUROC"], table["AUROC CI"], strict=True)
            ],
            "difference to first row": [
                fmt(v, ci) for v, ci in zip(table["vs first"], table["vs first CI"], strict=True)
            ],
        }
    )
    return markdown_table(shown)


def ehr_controls() -> list[tuple[str, list[str]]]:
    """(forecast, its no-EHR and shuffled-EHR controls) from VARIANTS: a control is the variant
    that samples alike but for the EHR window."""
    out = []
    for variants in VARIANTS.values():
        for real in (v for v in variants if v.ehr == "real"):
            same = [
                v.name
                for v in variants
                if v.ehr != "real" and replace(v, name=real.name, ehr="real") == real
            ]
            if same:
                out.append((real.name, sorted(same, key=lambda n: "no EHR" in n)))
    return out


def ehr_control(per_pair: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Does the real EHR window beat a shuffled one (another patient's) or none? Paired mean
    differences per pair (control minus real: positive latent L2 / negative SSIM mean the real
    window helps) with patient-bootstrap CIs."""
    rows = []
    for real, controls in ehr_controls():
        base = per_pair[per_pair["method"] == real].sort_values("pair")
        if base.empty:
            continue
        resamples = cluster_resamples(base["patient"].to_numpy(), n_boot, seed)
        for control in controls:
            other = per_pair[per_pair["method"] == control].sort_values("pair")
            if len(other) != len(base):
                continue
            record = {"forecast": real, "control": control, "pairs": len(base)}
            for col, label in (("latent_l2", "latent L2"), ("ssim", "SSIM")):
                diff = other[col].to_numpy() - base[col].to_numpy()
                record[f"{label}: control - real"] = float(diff.mean())
                record[f"{label} CI"] = percentile_ci(lambda r, d=diff: d[r].mean(), resamples)
            rows.append(record)
    return pd.DataFrame(rows)


def verdict(
    summary: pd.DataFrame, control: pd.DataFrame, method: str, pairs: int, patients: int, k: int
) -> dict:
    """One sentence a clinician can read beside the images, from the pooled figures."""
    pooled = summary[summary["gap"] == "all"].set_index("method")
    row, carry = pooled.loc[method], pooled.loc[CARRY]
    lo, hi = row["L2 / carry CI"]
    closer = (
        "closer to the true later image than"
        if hi < 1
        else "farther from the true later image than"
        if lo > 1
        else "about as close to the true later image as"
    )
    text = (
        f"On held-out patients the forecast mean is {closer} the prior carried forward (latent "
        f"distance {row['L2 / carry']:.2f}x carry-forward's, 95% CI {lo:.2f}-{hi:.2f}; SSIM "
        f"{row['SSIM']:.3f} vs {carry['SSIM']:.3f}), but the set of forecasts is further from "
        f"the set of true images than the priors are (latent FD {row['FD / carry']:.1f}x)."
        if row["FD / carry"] > 1.5
        else f"On held-out patients the forecast mean is {closer} the prior carried forward "
        f"(latent distance {row['L2 / carry']:.2f}x, 95% CI {lo:.2f}-{hi:.2f}; SSIM "
        f"{row['SSIM']:.3f} vs {carry['SSIM']:.3f}; latent FD {row['FD / carry']:.2f}x)."
    )
    shuffled = control[(control["forecast"] == method) & control["control"].str.contains("shuf")]
    if len(shuffled):
        d_lo, d_hi = shuffled.iloc[0]["latent L2 CI"]
        helps = d_lo > 0
        text += (
            " The labs measurably help (a shuffled patient's labs give a farther forecast)."
            if helps
            else " The labs make no measurable difference: another patient's labs give an "
            "equally close forecast."
        )
    return {
        "validated_on": f"{pairs} image pairs of {patients} patients, patient-level {k}-fold "
        "cross-validation (Hannover COVID-19 repository)",
        "verdict": text,
        "method": method,
        "latent_l2_vs_carry": round(float(row["L2 / carry"]), 4),
        "latent_l2_vs_carry_ci": [round(float(lo), 4), round(float(hi), 4)],
        "ssim": round(float(row["SSIM"]), 4),
        "ssim_carry_forward": round(float(carry["SSIM"]), 4),
        "psnr_db": round(float(row["PSNR dB"]), 3),
        "psnr_db_carry_forward": round(float(carry["PSNR dB"]), 3),
        "latent_fd_vs_carry": round(float(row["FD / carry"]), 4),
    }


def _control_markdown(table: pd.DataFrame) -> str:
    shown = pd.DataFrame(
        {
            "forecast": table["forecast"],
            "control": table["control"],
            "pairs": table["pairs"],
            **{
                f"{label}: control - real (95% CI)": [
                    f"{v:+.3f} ({ci[0]:+.3f} to {ci[1]:+.3f})"
                    for v, ci in zip(
                        table[f"{label}: control - real"], table[f"{label} CI"], strict=True
                    )
                ]
                for label in ("latent L2", "SSIM")
            },
        }
    )
    return markdown_table(shown)


def _parse_inits(values: list[str]) -> dict[str, Path]:
    out = {}
    for v in values:
        target, _, path = v.partition("=")
        if target not in VARIANTS or not path:
            raise SystemExit(f"--init takes TARGET=DIR with TARGET in {tuple(VARIANTS)}, got {v!r}")
        out[target] = Path(path)
    return out


def run_crossval(args: argparse.Namespace, rest: list[str], argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m core.cxr.evaluate --folds K")
    p.add_argument("--vae", type=Path, required=True)
    p.add_argument("--init", action="append", required=True, help="TARGET=pretrained DIR")
    p.add_argument("--train-steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--ramp-steps", type=int, default=150)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--forecast-method", default="(c) residual, prior start")
    p.add_argument("--n-boot", type=int, default=500)
    p.add_argument("--work", type=Path, default=None, help="cache per-fold results here")
    cv = p.parse_args(rest)
    pairs = hannover_pairs(args.hannover_root)
    folds = patient_folds([q.patient_id for q in pairs], args.folds, cv.fold_seed)
    autoencoder = CXRAutoencoder.load(cv.vae)
    inits = {
        t: DDLCXRForecaster.load(path, vae=cv.vae) for t, path in _parse_inits(cv.init).items()
    }
    log.info(
        "%d pairs of %d patients in %d patient folds",
        len(pairs),
        len(set().union(*folds)),
        len(folds),
    )
    per_pair = crossvalidate(
        pairs,
        autoencoder,
        inits,
        folds,
        ForecasterTrainConfig(cv.train_steps, cv.batch_size, cv.lr, cv.ramp_steps, seed=args.seed),
        samples=args.samples,
        steps=args.steps,
        seed=args.seed,
        work=cv.work,
    )
    table = summarise(per_pair, n_boot=cv.n_boot, seed=args.seed)
    fold_of = {pid: k for k, fold in enumerate(folds) for pid in fold}
    outcomes = outcome_table(
        per_pair, pairs, cv.forecast_method, HANNOVER_LABS, fold_of, cv.n_boot, args.seed
    )
    control = ehr_control(per_pair, cv.n_boot, args.seed)
    summary = verdict(table, control, cv.forecast_method, len(pairs), len(fold_of), args.folds)
    text = (
        f"Command: `python -m core.cxr.evaluate {' '.join(argv)}`\n\n"
        f"{len(pairs)} pairs of {len(fold_of)} patients, {len(folds)} patient folds; "
        f"{args.samples} samples per pair, {args.steps} DDIM steps, 95% CIs by patient bootstrap "
        f"({cv.n_boot} resamples).\n\n## Forecast quality\n\n{summary_markdown(table)}\n\n"
        f"## EHR control\n\n{_control_markdown(control)}\n\n"
        f"## Outcome prediction (forecast latent: {cv.forecast_method})\n\n"
        f"{_outcome_markdown(outcomes)}\n\n**Verdict** ({cv.forecast_method}): "
        f"{summary['verdict']}\n"
    )
    log.info("cross-validation:\n%s", text)
    if args.out is not None:
        args.out.write_text(text)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "crossvalidation": summary,
                    "summary": summary_json(table),
                    "ehr_control": summary_json(control),
                    "outcomes": summary_json(outcomes),
                },
                indent=1,
            )
            + "\n"
        )
    return 0
