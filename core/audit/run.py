"""The two offline audits, resumable: every trained model's attack features are kept in a work
folder as soon as they exist, and a rerun with the same arguments skips what is there.

The work folder holds per-target distances (derived numbers, no record values or ids) and the
plan's fingerprint; the results written to the manifest are aggregates only.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core import faults
from core.atomic import write_atomically
from core.audit.recipes import AnyCohort, Recipe
from core.checkpoints import MANIFEST_FILE, Manifest, claim, verify_checkpoint
from core.data.cohort import CohortSplit
from core.data.visits import VisitCohort
from core.encoding.vectors import VectorEncoding
from core.errors import ConfigError, storage_error
from core.manifest_guard import refuse_data
from core.metrics.attack_stats import attack_stats
from core.metrics.canary_audit import audit_over, canary_coins
from core.metrics.shadow import inclusion_plan, shadow_attack, shadow_training_rows, target_features

log = logging.getLogger(__name__)

# Shares of the canaries guessed "in" (highest scores) and as many "out" (lowest); the best of
# them is reported with a Bonferroni correction (core.metrics.canary_audit.audit_over).
GUESS_SHARES = (0.02, 0.05, 0.1, 0.25)


def record_in_manifest(folder: str | Path, kind: str, result: dict[str, Any]) -> Manifest:
    """Set ``metrics.audits[kind]`` in the manifest of ``folder`` (other audits kept) and return
    the new manifest. Read and written under the folder's claim, so two audits finishing at once
    both stay; the weights are untouched (their hash still verifies); the manifest is replaced by
    an fsynced rename, so a kill leaves the old manifest or the new one."""
    folder = Path(folder)
    with claim(folder, wait=60):
        for leftover in folder.glob(f".{MANIFEST_FILE}.tmp-*"):  # a write killed before its rename
            leftover.unlink(missing_ok=True)
        manifest = verify_checkpoint(folder)
        audits = {**(manifest.metrics.get("audits") or {}), kind: result}
        metrics = {**manifest.metrics, "audits": audits}
        updated = Manifest(**{**manifest.__dict__, "metrics": metrics})
        raw = updated.to_json()
        refuse_data(raw, folder.name)
        try:
            text = json.dumps(raw, indent=2) + "\n"
            write_atomically(
                folder / MANIFEST_FILE, text.encode(), point="audit.manifest.before_rename"
            )
        except OSError as exc:
            raise storage_error(
                exc, folder, f"Recording the {kind} audit in '{folder.name}'"
            ) from None
    return updated


class AuditWork:
    """A folder of finished pieces of one audit. ``plan`` (the audit's arguments, model and
    cohort hashes) is written with the first piece; a folder holding another plan is refused, so
    a rerun never mixes two audits' pieces, while arguments refused before any piece leave
    nothing that blocks the corrected rerun."""

    def __init__(self, folder: str | Path, plan: dict[str, Any]) -> None:
        self.folder, self.plan = Path(folder), plan
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for leftover in self.folder.glob(".*.tmp-*"):  # of a write killed before its rename
                leftover.unlink(missing_ok=True)
            path = self.folder / "plan.json"
            if path.exists():
                held = json.loads(path.read_text())
                differ = sorted(
                    k for k in {*held, *plan} - {"fingerprint"} if held.get(k) != plan.get(k)
                )
                if differ:
                    raise ConfigError(
                        f"{self.folder} holds the pieces of another audit (it differs in "
                        f"{', '.join(differ)}); give another --work folder or remove it."
                    )
        except OSError as exc:
            raise storage_error(exc, self.folder, "Preparing the audit's work folder") from None

    def has(self, name: str) -> bool:
        return (self.folder / f"{name}.npy").exists()

    def load(self, name: str) -> np.ndarray:
        return np.load(self.folder / f"{name}.npy", allow_pickle=False)

    def save(self, name: str, values: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(values, dtype=np.float64), allow_pickle=False)
        try:
            if not (self.folder / "plan.json").exists():
                plan = json.dumps(self.plan, sort_keys=True).encode()
                write_atomically(self.folder / "plan.json", plan)
            write_atomically(self.folder / f"{name}.npy", buffer.getvalue())
        except OSError as exc:
            raise storage_error(exc, self.folder, f"Saving the audit piece {name}") from None


@dataclass
class Progress:
    """Log lines with the time left, from the pace of the trainings run so far in this process."""

    trainings: int  # still to run when the audit started
    steps: int
    done: int = 0
    started: float = 0.0
    every: int = 0

    def __post_init__(self) -> None:
        self.started = time.perf_counter()
        self.every = max(self.steps // 10, 1)

    def callback(self, what: str) -> Callable[[int, int, float], None]:
        def report(step: int, total: int, loss: float) -> None:
            if step % self.every and step != total:
                return
            finished = self.done + step / max(total, 1)
            elapsed = time.perf_counter() - self.started
            left = elapsed / finished * (self.trainings - finished) if finished else float("nan")
            log.info("%s: step %d/%d, about %s left in all", what, step, total, _duration(left))

        return report


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "? min"
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _encoding(cohort: AnyCohort, split: CohortSplit, recipe: Recipe) -> tuple[Any, VectorEncoding]:
    table = recipe.table(cohort)
    return table, VectorEncoding.fit(table.subset(split.train))


def _size(cohort: AnyCohort) -> int:
    """Records (patients, for visit sequences): what a split and a subset count."""
    return cohort.n_patients if isinstance(cohort, VisitCohort) else cohort.n_records


def run_shadow_audit(
    cohort: AnyCohort,
    split: CohortSplit,
    recipe: Recipe,
    audited: Any,
    work: AuditWork,
    *,
    shadows: int = 8,
    targets: int = 400,
    seed: int = 0,
) -> dict[str, Any]:
    """The shadow-model attack (core.metrics.shadow) on ``audited``: ``targets`` records, half
    from its training split and half from its holdout, each in half of ``shadows`` models of its
    family trained on ``len(split.train)`` records of the cohort."""
    start = time.perf_counter()
    most = 2 * min(len(split.train), len(split.holdout))
    if targets % 2 or not 4 <= targets <= most:
        raise ConfigError(
            f"--targets must be even, from 4 to {most:,} (half from the {len(split.train):,} "
            f"training and half from the {len(split.holdout):,} held-out records); got {targets}"
        )
    half = targets // 2
    rng = np.random.default_rng(seed)
    target_rows = np.r_[
        rng.choice(split.train, half, replace=False), rng.choice(split.holdout, half, replace=False)
    ]
    is_member = np.r_[np.ones(half, bool), np.zeros(half, bool)]
    pool = np.setdiff1d(np.arange(_size(cohort)), target_rows)
    size = len(split.train)
    plan = inclusion_plan(len(target_rows), shadows, seed)
    fill = size - int(plan.sum(axis=1).min())  # the most non-target records one shadow needs
    if fill > len(pool):
        raise ConfigError(
            f"each shadow trains on {size:,} records like the audited model; with {targets} "
            f"targets one needs {fill:,} non-target records and the cohort has {len(pool):,}: "
            "use fewer --targets"
        )
    table, enc = _encoding(cohort, split, recipe)
    target_vectors = enc.encode(table.subset(target_rows))

    if not work.has("observed"):
        synth = recipe.sample(audited, size, seed)
        work.save("observed", target_features(target_vectors, enc.encode(synth)))
    todo = [k for k in range(shadows) if not work.has(f"shadow-{k}")]
    if len(todo) < shadows:
        log.info(
            "%d of %d shadow models already done in %s", shadows - len(todo), shadows, work.folder
        )
    progress = Progress(len(todo), recipe.steps)
    for k in todo:
        rows = shadow_training_rows(plan[k], target_rows, pool, size, seed * 1000 + k)
        model = recipe.train(
            cohort.subset(rows), seed + 1 + k, progress.callback(f"shadow {k + 1}/{shadows}")
        )
        synth = recipe.sample(model, size, seed + 1 + k)
        work.save(f"shadow-{k}", target_features(target_vectors, enc.encode(synth)))
        faults.point("audit.shadow.after_save")
        progress.done += 1
    features = np.stack([work.load(f"shadow-{k}") for k in range(shadows)])
    attack = shadow_attack(features, plan, work.load("observed"), is_member)
    return _summary(
        "shadow-model attack (LiRA on nearest-synthetic distance)",
        recipe,
        attack.details() | {"seed": seed},
        start,
        reused=shadows - len(todo),
    )


def run_canary_audit(
    cohort: AnyCohort,
    split: CohortSplit,
    recipe: Recipe,
    work: AuditWork,
    *,
    canaries: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """One-run audit (core.metrics.canary_audit): held-out records as canaries, each added to the
    training split with probability 1/2; one model of the family trained on that; each canary
    scored by closeness to its synthetic records."""
    start = time.perf_counter()
    table, enc = _encoding(cohort, split, recipe)
    rng = np.random.default_rng(seed)
    m = len(split.holdout) if canaries is None else canaries
    if not 2 <= m <= len(split.holdout):
        raise ConfigError(f"canaries come from the {len(split.holdout)} held-out records; got {m}")
    canary_rows = np.sort(rng.choice(split.holdout, m, replace=False))
    coins = canary_coins(m, seed)
    reused = int(work.has("canary-scores"))
    if not reused:
        rows = np.sort(np.r_[split.train, canary_rows[coins]])
        progress = Progress(1, recipe.steps)
        model = recipe.train(cohort.subset(rows), seed, progress.callback("canary model"))
        synth = recipe.sample(model, len(rows), seed)
        vectors = enc.encode(table.subset(canary_rows))
        work.save("canary-scores", -target_features(vectors, enc.encode(synth)))
    scores = work.load("canary-scores")
    guesses = tuple((max(1, round(s * m)),) * 2 for s in GUESS_SHARES if 2 * round(s * m) <= m)
    result = audit_over(coins, scores, guesses)
    attack = attack_stats(scores[coins], scores[~coins])
    return _summary(
        "canary audit (Steinke, Nasr & Jagielski 2023; one training run)",
        recipe,
        result.as_dict()
        | {
            "auroc": attack.auroc,
            "auroc_ci": attack.auroc_ci,
            "score": "closeness of each canary to its nearest synthetic record",
            "seed": seed,
        },
        start,
        reused=reused,
    )


def _summary(
    method: str, recipe: Recipe, results: dict, start: float, reused: int
) -> dict[str, Any]:
    return {
        "method": method,
        "family": recipe.family,
        "trained_with": recipe.settings_note,
        # a resumed audit: the time of this run only, and how many trained models it reused
        "seconds_this_run": round(time.perf_counter() - start, 1),
        "models_reused": reused,
        "date": datetime.now(UTC).date().isoformat(),
        **results,
    }


def plan_fingerprint(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
