"""Tempo from words: a small head on a prompt's sentence embedding predicts the BPM that a prompt stating none implies.

    condition [B, L, D], mask [B, L] ─► mean over the mask, L2-normalised (MiniLM's own pooling) [B, D]
    ─► Linear ─► GELU ─► Linear ─► log BPM [B] (around log 120) ─► BPM, clamped to `bpm_range`

"slow sad strings" gets a slow tempo and "energetic drums" a fast one: `beat_clock.with_inferred_tempo` feeds the
predicted BPM to the beat clock of rows that state no number (a stated BPM always wins; an empty prompt, like the
null condition of guidance, gets no clock). `LMConfig.tempo_head` puts one in the LM, saved with its weights;
musicgen-train fits it on the frozen condition of the captions whose BPM is known (musicgen/train/tempo.py).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .beat_clock import BPM_RANGE
from .sentence_encoder import mean_pooled

CENTER_BPM = 120.0  # what an untrained head predicts
HIDDEN = 64


class TempoHead(nn.Module):
    """bpm_range [2]: the slowest and fastest tempo it may predict (the clock's 20-400 BPM, narrowed by a fit to the
    tempi it was fitted on: words like "driving" stay within what training saw)."""

    def __init__(self, condition_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(condition_dim, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.register_buffer("bpm_range", torch.tensor(BPM_RANGE))

    def log_bpm(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled [B, D] (`pool`) -> predicted log BPM [B] float32."""
        weight = self.net[0].weight
        return self.net(pooled.to(weight.dtype))[:, 0].float() + math.log(CENTER_BPM)

    def forward(self, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """condition [B, L, D], mask [B, L] bool -> BPM [B] float32 within bpm_range; 0 in rows with no condition."""
        low, high = self.bpm_range.float()
        bpm = self.log_bpm(pool(condition, mask)).exp().clamp(low, high)
        return bpm * mask.any(dim=1).float()


def pool(condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """condition [B, L, D], mask [B, L] bool -> the sentence embedding [B, D] float32 the head reads."""
    return mean_pooled(condition.float(), mask.bool())
