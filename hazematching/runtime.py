"""Where computation runs: device choice and multi-process (torchrun) context."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import HazeMatchingError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available, else CPU; an unavailable CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise HazeMatchingError(f"unknown device {name!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HazeMatchingError(f"device {name!r} requested but CUDA is not available")
    return device


@dataclass(frozen=True)
class ProcessGroup:
    """Rank and world size of this process; world 1 when not launched by torchrun."""

    rank: int
    local_rank: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start_process_group(device: torch.device) -> ProcessGroup:
    """Join the torchrun process group if launched by torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return ProcessGroup(0, 0, 1)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ProcessGroup(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), world)


def stop_process_group(group: ProcessGroup) -> None:
    """Wait for every rank, then leave the process group."""
    if group.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
