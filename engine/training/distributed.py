"""torch.distributed for the trainer: one process per rank, as started by ``torchrun``.

When ``WORLD_SIZE`` > 1 the trainer joins (or creates) the default process group from the
``torchrun`` environment variables: NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``), Gloo on the
CPU. The global batch is split evenly across ranks, each rank takes its own slice of the same
seeded order (a DistributedSampler without the sampler), DDP averages the gradients, and only
rank 0 evaluates, previews and writes files.

A group the trainer creates is destroyed when the run ends. To run several trainings in the same
processes (a run, then its resume), create the group yourself first: re-creating one on the same
``MASTER_PORT`` races with the old group's store and can hang.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from engine.device import pick_device


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run; ``owned`` = we created the process group."""

    world: int
    rank: int
    local_rank: int
    owned: bool

    @property
    def main(self) -> bool:
        """True on rank 0, the one that writes files and evaluates."""
        return self.rank == 0


def setup(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched with WORLD_SIZE > 1; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(1, 0, 0, False), pick_device(device_name)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owned = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owned = True
    return DistInfo(dist.get_world_size(), dist.get_rank(), local_rank, owned), device


def teardown(info: DistInfo) -> None:
    """Leave the process group if we created it."""
    if info.owned and dist.is_initialized():
        dist.destroy_process_group()


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True if ``flag`` is True on any rank (all ranks must call this together)."""
    if info.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of a scalar tensor over all ranks (all ranks must call this together)."""
    if info.world == 1:
        return value
    t = value.detach().clone().float().reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t[0] / info.world


def check_identical(model: torch.nn.Module, info: DistInfo, device: torch.device) -> None:
    """Raise if any rank's parameters differ from rank 0's (a float64 checksum per tensor)."""
    if info.world == 1:
        return
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(device)
    lo, hi = sums.clone(), sums.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if not torch.equal(lo, hi):
        raise RuntimeError("parameters differ between ranks after training (DDP out of sync)")


def barrier(info: DistInfo) -> None:
    """Wait for every rank."""
    if info.world > 1:
        dist.barrier()
