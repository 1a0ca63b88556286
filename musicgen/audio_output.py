"""Generated audio to files: optional peak normalisation, clipping to [-1, 1] counted, atomic writes.

    wav, clipped = prepare_for_writing(wav, normalize=True)   # wav [C, N]
    write_atomically(Path("out/piano.flac"), wav, sample_rate)
"""
from __future__ import annotations

from pathlib import Path

import torch

from infra.audio import write_audio
from infra.files import atomic_write

PEAK_TARGET = 10 ** (-1 / 20)  # -1 dBFS, headroom for lossy encoders and resampling


def prepare_for_writing(wav: torch.Tensor, normalize: bool = False) -> tuple[torch.Tensor, int]:
    """wav [C, N] -> (wav scaled to a -1 dBFS peak if normalize, then clipped to [-1, 1]; the count of clipped samples)."""
    wav = wav.detach().float().cpu()
    if normalize:
        peak = wav.abs().max()
        if peak > 0:
            wav = wav * (PEAK_TARGET / peak)
    clipped = int((wav.abs() > 1).sum())
    return wav.clamp(-1, 1), clipped


def write_atomically(path: Path, wav: torch.Tensor, sample_rate: int) -> None:
    """Write wav [C, N] (format from path's extension) beside path, then rename: path is whole or untouched."""
    atomic_write(path, lambda temporary: write_audio(temporary, wav, sample_rate))
