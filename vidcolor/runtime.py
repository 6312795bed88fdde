"""Where work runs: the device, and the processes of a torchrun launch (one process alone is a
launch of one)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from vidcolor.errors import UserError


class RunError(UserError):
    """The run cannot go ahead as asked (run folder, device, data too small ...)."""


@dataclass(frozen=True)
class Dist:
    """This process in its launch: its rank of ``world``, its GPU index on the machine
    (``local``), and the device it works on."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def share(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def __enter__(self) -> Dist:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision's type on ``device``: CUDA only, bf16 where the GPU has it natively
    (Ampere on; no loss scaler needed), else fp16. Emulated bf16 has no cuDNN convolutions
    (T4, V100). None on the CPU."""
    if device.type != "cuda":
        return None
    with torch.cuda.device(device):
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if native else torch.float16


def setup_distributed(device: str, timeout: timedelta | None = None) -> Dist:
    """One process, or a rank of a torchrun launch (NCCL on GPUs, gloo on the CPU); each rank
    takes its own GPU. ``timeout``: how long ranks wait for each other (a pipeline's ranks wait
    while rank 0 alone builds a dataset)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=pick_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timeout)
    return Dist(rank, world, dev, local)
