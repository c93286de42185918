"""One convention for every training loop and training command (issue #29).

A loop (every family's ``train_*`` function)::

    run = TrainingRun(total_steps, callback, should_stop)
    trained = run.wrap(network, device)              # DDP under torchrun, else the network
    gen = run.generator(config.seed, device)         # this process's own stream
    for step in run.steps(config.steps):             # ends early once a stop is requested
        ...one optimiser step...
        run.done(loss)                               # -> callback(step, total, loss)

A command (every ``python -m core.<family>.train``)::

    with training_command("core.x.train", argv, args.out, args.device) as command:
        result = train_x(..., callback=command.log_every(500))
        if command.writes:                           # rank 0 of a torchrun
            command.export(result.model.save, args.out, data_card=..., metrics=..., seconds=...)

The export states how many processes trained the model and on what device, always: a command
cannot forget to pass them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from core.checkpoints import Manifest
from core.cli import claim_output, export_trained
from core.device import GlobalStream, make_generator
from core.distributed import command_line, current_process, training_processes, wrap
from core.progress import StepCallback

log = logging.getLogger(__name__)

__all__ = ["GlobalStream", "TrainingCommand", "TrainingRun", "training_command"]


class TrainingRun:
    """Progress, stop requests, process rank and random streams of one training (all stages).

    ``callback(step, total, loss)`` follows every step (the app's rate and time left show from
    the first seconds); ``should_stop()`` is asked before every step, and once it says yes every
    later stage is skipped too, keeping what was learned so far.
    """

    def __init__(
        self,
        total: int,
        callback: StepCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.total = total
        self.callback, self.should_stop = callback, should_stop
        self.rank, self.world = current_process()
        self.losses: list[float] = []
        self.stopped = False
        self.started = time.perf_counter()

    def proceed(self) -> bool:
        """True when the next step may run; False from the first stop request on."""
        if not self.stopped and self.should_stop is not None and self.should_stop():
            self.stopped = True
        return not self.stopped

    def steps(self, n: int) -> Iterator[int]:
        """Step indices ``0 .. n-1`` of one stage, ending at a stop request."""
        for i in range(n):
            if not self.proceed():
                return
            yield i

    def done(self, loss: float) -> None:
        """Record one finished optimiser step and report it."""
        self.losses.append(loss)
        if self.callback is not None:
            self.callback(len(self.losses), self.total, loss)

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``module`` for the forward pass: DistributedDataParallel under torchrun."""
        return wrap(module, device, self.world)

    def generator(
        self, seed: int, device: torch.device | str = "cpu", stream: int = 0
    ) -> torch.Generator:
        """This process's generator number ``stream`` of ``seed``: each process of a torchrun
        draws its own batches and noise; a plain run is rank 0."""
        return make_generator(seed + 1000 * self.rank + stream, device)

    @property
    def seconds(self) -> float:
        """Since the run was created."""
        return time.perf_counter() - self.started


@dataclass(frozen=True)
class TrainingCommand:
    """One process of a training command: where it runs, and how the model card states it."""

    module: str  # "core.ehrdiff.train"
    argv: tuple[str, ...]
    device: torch.device
    rank: int
    world: int

    @property
    def writes(self) -> bool:
        """Only rank 0 evaluates and writes the checkpoint."""
        return self.rank == 0

    @property
    def line(self) -> str:
        """The command as typed: ``python -m ...`` or ``torchrun --nproc_per_node=N -m ...``."""
        return command_line(self.module, list(self.argv), self.world)

    def log_every(self, every: int) -> StepCallback:
        """A progress callback logging every ``every`` steps and the last, on rank 0."""

        def report(step: int, total: int, loss: float) -> None:
            if self.writes and (step % every == 0 or step == total):
                log.info("step %d/%d loss %.4f", step, total, loss)

        return report

    def export(
        self,
        save: Callable[..., Manifest],
        out: Path,
        *,
        data_card: dict,
        metrics: dict,
        seconds: float,
    ) -> Manifest:
        """Write the trained model with its card, this command and its processes and device."""
        return export_trained(
            save,
            out,
            data_card=data_card,
            command=self.line,
            metrics=metrics,
            seconds=seconds,
            world=self.world,
            device=self.device,
        )


@contextmanager
def training_command(
    module: str, argv: list[str] | None, out: Path, device_choice: str | None
) -> Iterator[TrainingCommand]:
    """Claim ``out`` (a second training into it is refused), set up logging and the torchrun
    processes; yields this process's :class:`TrainingCommand`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    held = claim_output(out)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        with training_processes(device_choice) as (device, rank, world):
            yield TrainingCommand(module, tuple(argv), device, rank, world)
    finally:
        held.__exit__(None, None, None)
