"""A result's audio as WAV or FLAC bytes (its spectrogram image: infra/spectrogram_image.py)."""
from __future__ import annotations

import io

import soundfile
import torch

AUDIO_FORMATS = {"wav": ("WAV", "PCM_16", "audio/wav"), "flac": ("FLAC", "PCM_16", "audio/flac")}


def audio_bytes(wav: torch.Tensor, sample_rate: int, kind: str) -> bytes:
    """wav [C, N] float -> the bytes of a 16-bit `kind` file ("wav" or "flac"), clipped to [-1, 1] and rounded to
    16 bits here, so that both formats hold the same samples."""
    container, subtype, _ = AUDIO_FORMATS[kind]
    samples = (wav.detach().float().cpu().clamp(-1, 1) * 32767).round().to(torch.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples.T.numpy(), sample_rate, format=container, subtype=subtype)
    return buffer.getvalue()
