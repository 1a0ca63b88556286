"""Audio files in and out: any format soundfile reads (wav, flac, ogg, mp3, ...), soxr resampling.

Waveforms are float32 tensors [C, N] in [-1, 1] (a batch dimension is added by callers).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".opus")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Header facts of an audio file; raises soundfile.LibsndfileError (a RuntimeError) if unreadable."""
    info = soundfile.info(str(path))
    return AudioInfo(sample_rate=info.samplerate, frames=info.frames, channels=info.channels)


def resample(wav: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """wav [C, N] at from_rate -> [C, round(N * to_rate / from_rate)] at to_rate (soxr, high quality)."""
    if from_rate == to_rate:
        return wav
    resampled = soxr.resample(wav.T.contiguous().numpy(), from_rate, to_rate, quality="HQ")
    return torch.from_numpy(np.ascontiguousarray(resampled.T, dtype=np.float32))


def mix_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """wav [C, N] -> [channels, N]: average down to mono, repeat mono up, keep matching counts."""
    if wav.shape[0] == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=0, keepdim=True)
    if wav.shape[0] == 1:
        return wav.expand(channels, -1).contiguous()
    raise ValueError(f"cannot mix {wav.shape[0]} channels to {channels}; expected mono, or {channels} channels")


def read_audio(path: str | Path, sample_rate: int | None = None, channels: int | None = None,
               start: float = 0.0, duration: float | None = None) -> torch.Tensor:
    """Read `duration` seconds from `start` (the whole file by default) as float32 [C, N].

    With `sample_rate` the audio is resampled to it; with `channels` it is mixed to that count.
    """
    path = Path(path)
    with soundfile.SoundFile(str(path)) as handle:
        file_rate = handle.samplerate
        first = int(round(start * file_rate))
        frames = -1 if duration is None else int(round(duration * file_rate))
        if first > 0:
            handle.seek(min(first, handle.frames))
        data = handle.read(frames, dtype="float32", always_2d=True)
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if channels is not None:
        wav = mix_channels(wav, channels)
    if sample_rate is not None:
        wav = resample(wav, file_rate, sample_rate)
    return wav


def write_audio(path: str | Path, wav: torch.Tensor, sample_rate: int) -> None:
    """Write float wav [C, N] (format from the file extension, e.g. .wav, .flac, .ogg)."""
    if wav.dim() != 2:
        raise ValueError(f"expected wav [C, N], got shape {tuple(wav.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), wav.detach().cpu().float().clamp(-1, 1).T.numpy(), sample_rate)


def find_audio_files(folder: str | Path) -> list[Path]:
    """Audio files (by extension) anywhere under `folder`, sorted."""
    return sorted(path for path in Path(folder).rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file())
