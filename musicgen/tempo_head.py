"""Tempo from words: a small head on a prompt's token states predicts the BPM that a prompt stating none implies.

    condition [B, L, D] ─► per token: a gate (Linear) and a log-tempo offset (Linear ─► GELU ─► Linear)
    softmax of the gates over the prompt's tokens and one "no tempo word" slot (a learnt gate, offset 0)
    ─► log BPM [B] = log 120 + bias + the gate-weighted offsets ─► BPM, clamped to `bpm_range`

The gates let a tempo word speak for the whole prompt wherever it stands: "slow sad strings", "strings, keep it
slow" and "slow" alone all give the word "slow" the weight, and a prompt with no tempo word falls to the empty slot
and the tempo the captions have on average. (A head on the mean-pooled sentence embedding, tried first, heard the
other words as much as the tempo word: docs/experiments.md.) `beat_clock.with_inferred_tempo` feeds the predicted
BPM to the beat clock of rows that state no number (a stated BPM always wins; an empty prompt, like the null
condition of guidance, gets no clock). `LMConfig.tempo_head` puts one in the LM, saved with its weights;
musicgen-train fits it on the frozen condition of the captions whose BPM is known (musicgen/train/tempo.py).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .beat_clock import BPM_RANGE

CENTER_BPM = 120.0  # what an untrained head predicts
HIDDEN = 64
MASKED = -1e9  # the gate of a padding token


class TempoHead(nn.Module):
    """bpm_range [2]: the slowest and fastest tempo it may predict (the clock's 20-400 BPM, narrowed by a fit to the
    tempi it was fitted on: words like "driving" stay within what training saw)."""

    def __init__(self, condition_dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(condition_dim, 1)
        self.offset = nn.Sequential(nn.Linear(condition_dim, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, 1))
        self.empty_gate = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(1))
        nn.init.zeros_(self.offset[-1].weight)
        nn.init.zeros_(self.offset[-1].bias)
        self.register_buffer("bpm_range", torch.tensor(BPM_RANGE))

    def log_bpm(self, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """condition [B, L, D], mask [B, L] bool -> predicted log BPM [B] float32, unclamped."""
        states = condition.to(self.gate.weight.dtype)
        gates = self.gate(states)[..., 0].float().masked_fill(~mask.bool(), MASKED)
        gates = torch.cat([self.empty_gate.float().expand(len(gates), 1), gates], dim=1)
        offsets = self.offset(states)[..., 0].float()
        offsets = torch.cat([offsets.new_zeros(len(offsets), 1), offsets], dim=1)
        return (gates.softmax(dim=1) * offsets).sum(dim=1) + self.bias.float() + math.log(CENTER_BPM)

    def forward(self, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """condition [B, L, D], mask [B, L] bool -> BPM [B] float32 within bpm_range; 0 in rows with no condition."""
        low, high = self.bpm_range.float()
        bpm = self.log_bpm(condition, mask).exp().clamp(low, high)
        return bpm * mask.any(dim=1).float()
