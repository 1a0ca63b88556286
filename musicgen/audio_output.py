"""Generated audio to files: optional peak normalisation, clipping to [-1, 1] counted, atomic writes.

    wav, clipped = prepare_for_writing(wav, normalize=True)   # wav [C, N]
    write_atomically(Path("out/piano.flac"), wav, sample_rate)
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from codec.audio import write_audio

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
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        write_audio(partial, wav, sample_rate)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
