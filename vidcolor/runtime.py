"""Where training runs: the device and the torchrun process group."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from vidcolor.errors import UserError


class RunError(UserError):
    """The run cannot go ahead as asked (run folder, device, data too small ...)."""


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def pick_device(name: str) -> torch.device:
    """auto, cpu, cuda or cuda:N, checked against what this machine has."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise RunError(f"--device {name}: not a device (auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise RunError(f"--device {name}: no CUDA device here (use cpu or auto)")
        if dev.index is not None and dev.index >= count:
            raise RunError(f"--device {name}: this machine has {count} CUDA device(s)")
    elif dev.type != "cpu":
        raise RunError(f"--device {name}: only cpu and cuda are supported")
    return dev


def setup_distributed(device: str) -> Dist:
    """One process, or a rank of a torchrun launch (NCCL on GPUs, gloo on the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=pick_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, dev)
