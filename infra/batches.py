"""Which items each step reads: a sampler indexed by the step, so a resumed run reads what an uninterrupted one would."""
from __future__ import annotations

from collections.abc import Iterator

import torch


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Indices of this rank's batch for each step in [start_step, total_steps).

    Step s, rank r, item b -> index (s * world_size + r) * batch_size + b: every rank reads different
    segments and the stream depends only on the step.
    """

    def __init__(self, batch_size: int, start_step: int, total_steps: int, rank: int = 0, *,
                 world_size: int = 1) -> None:
        self.batch_size = batch_size
        self.start_step = start_step
        self.total_steps = total_steps
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.total_steps):
            first = (step * self.world_size + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
