"""torch.distributed from torchrun's environment, or a single process when there is none.

    with process_group() as env:      # reads RANK / WORLD_SIZE / LOCAL_RANK set by torchrun
        seed_everything(config.seed, env.rank)
        ...
        if env.is_main: save(...)
    # here, the body having succeeded, every rank has left the group together (cleanup)

The backend is NCCL when the process has a GPU, gloo otherwise. Helpers are safe to call when
torch.distributed is not initialised: they act as the single-process case.
"""
from __future__ import annotations

import contextlib
import gc
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn  # noqa: F401  before any group exists: see cleanup
from torch.distributed.device_mesh import DeviceMesh


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


@contextlib.contextmanager
def process_group(device: str | None = None) -> Iterator[DistributedEnv]:
    """init_distributed for the body of a run, then cleanup() once the body has succeeded.

    After an error the group is left as it is: the process is about to exit with the error (torchrun then stops
    the other ranks), and cleanup's barrier could wait forever for ranks that are elsewhere, e.g. in a collective.
    """
    env = init_distributed(device)
    yield env
    cleanup()


def cleanup() -> None:
    """Leave the process group on every rank together, its threads ended on return (a no-op in a single process).

    The barrier keeps any rank from tearing its connections down while another still uses them. Then the group must
    really go: destroy_process_group alone does not stop a gloo group, whose worker and socket threads end only
    with the last reference to it, and a group still alive at exit keeps them running through interpreter shutdown,
    where a rank can abort ("terminate called without an active exception") after a run that succeeded. Three
    kinds of reference outlive a run: objects left in reference cycles (collected here); every DeviceMesh, which
    FSDP makes and DTensor's caches keep for the life of the process (released here); and the defaults
    `group=group.WORLD` of torch.distributed.nn.functional, bound when that module is first imported (DDP's
    constructor imports it, through torch._dynamo) - so this module imports it first, while there is no group.
    """
    if not is_distributed():
        return
    dist.barrier()
    dist.destroy_process_group()
    release_device_meshes()
    gc.collect()


def release_device_meshes() -> None:
    """Empty the process-group registry of every live DeviceMesh.

    The registry is a second reference to groups a mesh also finds by name; torch reads it only when
    torch.compile traces. Once the groups are destroyed it only keeps them, and their threads, alive.
    """
    for obj in gc.get_objects():
        if isinstance(obj, DeviceMesh):
            obj._pg_registry.clear()


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
