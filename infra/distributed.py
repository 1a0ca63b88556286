"""torch.distributed from torchrun's environment, or a single process when there is none.

    env = init_distributed()          # reads RANK / WORLD_SIZE / LOCAL_RANK set by torchrun
    seed_everything(config.seed, env.rank)
    ...
    if env.is_main: save(...)
    barrier()
    cleanup()

The backend is NCCL when the process has a GPU, gloo otherwise. Helpers are safe to call when
torch.distributed is not initialised: they act as the single-process case.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedEnv:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistributedEnv:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), if any.

    `device` forces "cpu" or "cuda"; by default a GPU is used when one is visible. Each process
    takes the GPU of its local rank.
    """
    use_cuda = torch.cuda.is_available() if device is None else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no GPU is visible")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch_device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(torch_device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    return DistributedEnv(rank=rank, local_rank=local_rank, world_size=world_size, device=torch_device)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (a no-op in a single process)."""
    if is_distributed():
        dist.destroy_process_group()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a one-element list in a single process)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over ranks, as a new tensor (a copy of it in a single process)."""
    reduced = tensor.clone()
    if is_distributed():
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over ranks (the tensor itself in a single process)."""
    return all_reduce_sum(tensor) / world_size() if is_distributed() else tensor


def seed_everything(seed: int, rank_offset: int = 0) -> None:
    """Seed python, numpy and torch (all devices) with `seed + rank_offset`."""
    value = seed + rank_offset
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)
