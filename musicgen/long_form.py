"""Long-form generation: a clip longer than the LM's context, made of overlapping windows.

Every window is at most `window` frames (the model's maximum) and starts `stride` frames after the
previous one; its first frames are the last `window - stride` frames already made, given as the
prompt, and the rest is generated (audiocraft's 30 s window and 18 s stride, in frames):

    frames   0 ........................................................ total
    window 0 [ prompt | generated .............. ]
    window 1           [ kept tail of 0 | generated ......... ]
    window 2                     [ kept tail of 1 | generated ....... ]
             <- stride -><- stride ->

A prompt that fits a window with room to spare is kept whole, as audiocraft does; a longer one
conditions the first window on its last `window - stride` frames only, and stays whole in the output.
A melody-conditioned LM gets a chroma for each window (musicgen/melody.py makes them: the melody from the
window's first frame on, as audiocraft does).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from patterns import PatternProvider

from .beat_clock import beat_clock
from .config import Sampling
from .generate import ProgressCallback, first_generated_step, stream_codes
from .lm import LM

AUDIOCRAFT_STRIDE_FRACTION = 18 / 30


@dataclass(frozen=True)
class Window:
    """Frames [start, known) of the clip are the window's prompt; frames [known, end) are generated in it."""

    start: int
    known: int
    end: int

    @property
    def prompt_frames(self) -> int:
        return self.known - self.start

    @property
    def frames(self) -> int:
        return self.end - self.start


def default_stride(window: int) -> int:
    """audiocraft's stride (18 s of a 30 s window) scaled to a window of `window` frames, at least 1 frame of overlap."""
    return max(1, min(window - 1, round(AUDIOCRAFT_STRIDE_FRACTION * window)))


def plan_windows(prompt_frames: int, total_frames: int, window: int, stride: int) -> list[Window]:
    """The windows that take a clip from `prompt_frames` known frames to `total_frames`, in order.

    One window when everything fits; otherwise every window after the first starts `stride` frames after
    the one before and is prompted with `window - stride` frames.
    """
    if not 0 <= prompt_frames < total_frames:
        raise ValueError(f"the clip ({total_frames} frames) must be longer than its prompt ({prompt_frames} frames)")
    if total_frames > window and not 1 <= stride < window:
        raise ValueError(f"stride must be in [1, {window - 1}] frames for a window of {window} frames, got {stride}")
    overlap = window - stride
    start = 0 if prompt_frames < window else prompt_frames - overlap
    known = prompt_frames
    windows = []
    while known < total_frames:
        end = min(start + window, total_frames)
        windows.append(Window(start, known, end))
        start, known = start + stride, end
    return windows


@torch.inference_mode()
def generate_in_windows(lm: LM, provider: PatternProvider, condition: torch.Tensor, condition_mask: torch.Tensor,
                        *, sampling: Sampling, windows: list[Window], prompt: torch.Tensor | None = None,
                        generators: Sequence[torch.Generator] | None = None,
                        progress: ProgressCallback | None = None,
                        beats_per_frame: torch.Tensor | None = None, downbeat_frame: float = 0.0,
                        chromas: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Codes [B, K, windows[-1].end] int64: prompt [B, K, windows[0].known] (if any) followed by every window's new
    frames; the arguments as for `stream_in_windows`."""
    made = list(stream_in_windows(lm, provider, condition, condition_mask, sampling=sampling, windows=windows,
                                  prompt=prompt, generators=generators, progress=progress,
                                  beats_per_frame=beats_per_frame, downbeat_frame=downbeat_frame, chromas=chromas))
    return torch.cat(made if prompt is None else [prompt.to(made[0].device), *made], dim=-1)


def stream_in_windows(lm: LM, provider: PatternProvider, condition: torch.Tensor, condition_mask: torch.Tensor,
                      *, sampling: Sampling, windows: list[Window], prompt: torch.Tensor | None = None,
                      generators: Sequence[torch.Generator] | None = None, progress: ProgressCallback | None = None,
                      beats_per_frame: torch.Tensor | None = None, downbeat_frame: float = 0.0,
                      chromas: Sequence[torch.Tensor] | None = None) -> Iterator[torch.Tensor]:
    """The frames after prompt [B, K, windows[0].known] (if any), up to windows[-1].end, as codes [B, K, n] int64
    yielded as soon as they are finished (`stream_codes`), window after window.

    condition [B, L, condition_dim], condition_mask [B, L] and generators (one per row) as for `stream_codes`:
    every window continues each row's stream where the window before left it; beats_per_frame [B] (0: none)
    drives an LM's beat clock, which each window picks up at its first frame, counting bars from
    downbeat_frame (a frame of the prompt on which a bar starts); chromas: for a melody-conditioned LM, one chroma
    [B, T_c, chroma_bins] per window (None: no melody); progress(done, total) counts the steps of all windows together.
    """
    by_length = {frames: provider.get_pattern(frames) for frames in {window.frames for window in windows}}
    patterns = [by_length[window.frames] for window in windows]  # one build per length: a long clip has 2 or 3
    steps = [pattern.num_steps + 1 - first_generated_step(pattern, window.prompt_frames)
             for pattern, window in zip(patterns, windows)]
    if chromas is not None and len(chromas) != len(windows):
        raise ValueError(f"got {len(chromas)} chromas for {len(windows)} windows; expected one per window")
    codes = prompt
    for index, (window, pattern) in enumerate(zip(windows, patterns)):
        window_prompt = None if codes is None or window.prompt_frames == 0 else codes[..., window.start:window.known]
        clock = None if beats_per_frame is None else beat_clock(beats_per_frame, window.start - downbeat_frame)
        for new_frames in stream_codes(lm, pattern, condition, condition_mask, sampling=sampling, prompt=window_prompt,
                                       generators=generators, clock=clock,
                                       chroma=None if chromas is None else chromas[index],
                                       progress=_offset_progress(progress, sum(steps[:index]), sum(steps))):
            codes = new_frames if codes is None else torch.cat([codes.to(new_frames.device), new_frames], dim=-1)
            yield new_frames


def _offset_progress(progress: ProgressCallback | None, done_before: int, total: int) -> ProgressCallback | None:
    """A window's progress(done, its_total) reported as progress(done_before + done, total)."""
    if progress is None:
        return None
    return lambda done, _window_total: progress(done_before + done, total)
