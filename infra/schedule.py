"""Learning-rate schedule shared by the training loops: linear warmup, then cosine decay."""
from __future__ import annotations

import math

import torch


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_factor: float = 0.0) -> float:
    """Multiplier of the base learning rate at `step`: 0 -> 1 over warmup, then cosine down to `min_factor`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_factor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepping once per optimizer step; its state_dict goes into checkpoints."""
    if warmup_steps < 0 or total_steps < 1:
        raise ValueError(f"expected warmup_steps >= 0 and total_steps >= 1, got {warmup_steps} and {total_steps}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, total_steps, min_factor))
