"""The LM's training loss under any codebook pattern: cross-entropy per codebook, averaged over codebooks.

    inputs, targets = inputs_and_targets(pattern, codes, special)   # [B, K, S] each
    logits = lm(inputs, condition, mask)                             # [B, K, S, card]
    sums, counts = codebook_cross_entropy(logits, targets, special)  # [K], [K]
    loss = (sums / counts).mean()

Only the positions the pattern fills with a real frame are scored: the empty slots of the pattern
and the padding of short clips both hold the special token, and a special target is never scored.
Sums and counts (not means) let a step add up micro-batches and processes exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from patterns import Pattern


def inputs_and_targets(pattern: Pattern, codes: torch.Tensor, special_token: int) -> tuple[torch.Tensor, torch.Tensor]:
    """codes [B, K, T] int64 (padding = special_token) -> (inputs, targets) [B, K, S], S = pattern.num_steps.

    The LM's logits at step s of `inputs` predict step s of `targets` (the sequence shifted by one).
    """
    sequence, _ = pattern.build_sequence(codes, special_token)
    return sequence[..., :-1], sequence[..., 1:]


def codebook_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                           special_token: int) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [B, K, S, card], targets [B, K, S] -> (summed cross-entropy [K] float32, scored positions [K] int64).

    Computed in float32 whatever the logits' dtype; targets equal to special_token are not scored.
    """
    if logits.shape[:3] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must agree on [B, K, S]")
    losses = F.cross_entropy(logits.float().flatten(0, 2), targets.flatten(), ignore_index=special_token,
                             reduction="none").view(targets.shape)
    return losses.sum(dim=(0, 2)), (targets != special_token).sum(dim=(0, 2))
