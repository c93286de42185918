"""torchrun support shared by the training commands (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from core.device import select_device


@contextmanager
def training_processes(device_choice: str | None) -> Iterator[tuple[torch.device, int, int]]:
    """Yields (device, rank, world size); a plain run is rank 0 of 1."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = select_device(device_choice)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield (
            device,
            (dist.get_rank() if distributed else 0),
            (dist.get_world_size() if distributed else 1),
        )
    finally:
        if distributed:
            dist.destroy_process_group()


def current_process() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wrap(module: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    if world == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def command_line(module: str, argv: list[str], world: int) -> str:
    import shlex

    args = " ".join(shlex.quote(a) for a in argv)
    prefix = f"torchrun --nproc_per_node={world} -m" if world > 1 else "python -m"
    return f"{prefix} {module} {args}"
