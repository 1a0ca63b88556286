"""A beat clock for the LM: the tempo a prompt states ("at 120 BPM"), given as the phase of the beat at every step.

    prompt "... at 120 BPM ..." ─► 120 / 60 / frame_rate beats a frame
    step s of a clip starting at frame f0 ─► phase φ = (f0 + s) · beats a frame
    ─► sin, cos of 2π · k · φ / 4 for k = 1 .. 8 (bar, half bar, beat, half beat, ...) ─► Linear ─► added to the embeddings

MusicGen reads the tempo from the text alone. Our small default LM (two hours on 2 CPU cores) did not
learn to: its loss was the same with the caption's true BPM, a wrong one or none. `LMConfig.beat_clock`
gives it this explicit path: the Linear starts at zero (a model gaining the clock is unchanged until
trained), and a prompt that states no BPM, like the null condition of classifier-free guidance, gets
no clock, unless the LM has a tempo head (musicgen/tempo_head.py), which infers a tempo from its words
(`with_inferred_tempo`). Published MusicGen weights have none.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"
TEMPO_IN_TEXT = re.compile(  # "140 BPM", "140bpm", "140-bpm", "140 beats per minute"; "BPM 140", "bpm: 140", "tempo 140"
    rf"(?<![\w.])(?P<before>{NUMBER})\s*-?\s*(?:bpm|beats\s+(?:per|a)\s+minute)\b"
    rf"|\b(?:bpm|tempo)\s*(?:[:=]|of|is|at)?\s*(?P<after>{NUMBER})(?![\w.])",
    re.IGNORECASE)
TEMPO_PHRASE = re.compile(rf"(?:\bat\s+)?(?:\ba\s+tempo\s+of\s+)?(?:{TEMPO_IN_TEXT.pattern})", re.IGNORECASE)
BPM_RANGE = (20.0, 400.0)
BEATS_PER_BAR = 4
HARMONICS = 8  # of the bar: 1 (bar), 2 (half bar), 4 (beat), 8 (half beat), ...
FEATURES = 2 * HARMONICS


def stated_bpm(prompt: str, *, strict: bool = True) -> float | None:
    """The tempo a prompt states ("120 BPM", "96.5 bpm", "BPM: 90", "tempo 140", "90 beats per minute"), None if none.

    A tempo that is not finite or outside BPM_RANGE, or two different tempi, are a ValueError naming the prompt;
    with strict=False (training captions, where word dropout can leave "BPM 2 guitars") they count as no tempo.
    """
    try:
        return _stated_bpm(prompt)
    except ValueError:
        if strict:
            raise
        return None


def _stated_bpm(prompt: str) -> float | None:
    stated = {float(match.group("before") or match.group("after")) for match in TEMPO_IN_TEXT.finditer(prompt)}
    if len(stated) > 1:
        raise ValueError(f"the prompt {prompt!r} states {len(stated)} tempi ({', '.join(f'{bpm:g}' for bpm in sorted(stated))} "
                         "BPM); state one")
    if not stated:
        return None
    (bpm,) = stated
    low, high = BPM_RANGE
    if not (math.isfinite(bpm) and low <= bpm <= high):
        raise ValueError(f"the prompt {prompt!r} states a tempo of {bpm:g} BPM; expected {low:g} to {high:g} BPM")
    return bpm


def without_tempo(prompt: str) -> str:
    """The prompt with every stated tempo left out, with its "at" or "at a tempo of": what its words alone say.

    "fast piano at 160 BPM in A minor" -> "fast piano in A minor"; "organ, 90 BPM, F# minor" -> "organ, F# minor".
    """
    parts = TEMPO_PHRASE.sub(" ", prompt).split(",")
    return ", ".join(" ".join(part.split()) for part in parts if part.strip())


def beats_per_frame(prompts: Sequence[str], frame_rate: float, *, strict: bool = True) -> torch.Tensor:
    """prompts (B strings) -> [B] float32: the beats each codec frame lasts at the stated tempo, 0 where none is stated
    (`stated_bpm`: strict=True raises for a tempo out of range)."""
    return torch.tensor([(stated_bpm(prompt, strict=strict) or 0.0) / 60.0 / frame_rate for prompt in prompts],
                        dtype=torch.float32)


def with_inferred_tempo(beats_per_frame: torch.Tensor, inferred_bpm: torch.Tensor | None,
                        frame_rate: float) -> torch.Tensor:
    """beats_per_frame [B] (0 where a prompt states no tempo), inferred_bpm [B] (the tempo head's, 0 for a row with
    no condition) or None -> [B]: the stated tempo where there is one, else the inferred one (None: as given)."""
    if inferred_bpm is None:
        return beats_per_frame
    inferred = inferred_bpm.to(beats_per_frame) / 60.0 / frame_rate
    return torch.where(beats_per_frame > 0, beats_per_frame, inferred)


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
