"""A beat clock for the LM: the tempo a prompt states ("at 120 BPM"), given as the phase of the beat at every step.

    prompt "... at 120 BPM ..." ─► 120 / 60 / frame_rate beats a frame
    step s of a clip starting at frame f0 ─► phase φ = (f0 + s) · beats a frame
    ─► sin, cos of 2π · k · φ / 4 for k = 1 .. 8 (bar, half bar, beat, half beat, ...) ─► Linear ─► added to the embeddings

MusicGen reads the tempo from the text alone. Our small default LM (two hours on 2 CPU cores) did not
learn to: its loss was the same with the caption's true BPM, a wrong one or none. `LMConfig.beat_clock`
gives it this explicit path: the Linear starts at zero (a model gaining the clock is unchanged until
trained), and a prompt that states no BPM, like the null condition of classifier-free guidance, gets
no clock. Published MusicGen weights have none.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

BPM_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:bpm|beats per minute)\b", re.IGNORECASE)
BEATS_PER_BAR = 4
HARMONICS = 8  # of the bar: 1 (bar), 2 (half bar), 4 (beat), 8 (half beat), ...
FEATURES = 2 * HARMONICS


def stated_bpm(prompt: str) -> float | None:
    """The tempo a prompt states ("120 BPM", "at 96.5 bpm", "90 beats per minute"), None if none or not positive."""
    match = BPM_IN_TEXT.search(prompt)
    bpm = float(match.group(1)) if match else 0.0
    return bpm if bpm > 0 else None


def beats_per_frame(prompts: Sequence[str], frame_rate: float) -> torch.Tensor:
    """prompts (B strings) -> [B] float32: the beats each codec frame lasts at the stated tempo, 0 where none is stated."""
    return torch.tensor([(stated_bpm(prompt) or 0.0) / 60.0 / frame_rate for prompt in prompts], dtype=torch.float32)


def beat_clock(beats_per_frame: torch.Tensor, first_frame: torch.Tensor | int = 0) -> torch.Tensor:
    """The clock of a batch: [B, 2], the beats a frame lasts (0: no clock) and the clip frame at step 0."""
    first_frame = torch.as_tensor(first_frame, dtype=torch.float32, device=beats_per_frame.device)
    return torch.stack([beats_per_frame.float(), first_frame.expand(beats_per_frame.shape)], dim=1)


def clock_features(positions: torch.Tensor, clock: torch.Tensor) -> torch.Tensor:
    """positions [S], clock [B, 2] (`beat_clock`) -> [B, S, FEATURES]: sines then cosines of the bar's harmonics at
    each step's phase; all zeros in rows without a clock."""
    rate, first_frame = clock.float().unbind(dim=1)
    beats = (first_frame[:, None] + positions.float()[None, :]) * rate[:, None]
    harmonics = torch.arange(1, HARMONICS + 1, dtype=torch.float32, device=clock.device)
    angles = (2 * math.pi / BEATS_PER_BAR) * beats[..., None] * harmonics
    features = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    return features * (rate > 0)[:, None, None].float()


class BeatClock(nn.Module):
    """The clock's features projected to the LM width; zero at initialisation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.projection = nn.Linear(FEATURES, dim, bias=False)
        nn.init.zeros_(self.projection.weight)

    def forward(self, positions: torch.Tensor, clock: torch.Tensor) -> torch.Tensor:
        """positions [S], clock [B, 2] -> [B, S, dim]."""
        return self.projection(clock_features(positions, clock).to(self.projection.weight.dtype))
