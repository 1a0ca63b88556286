"""Audio files in and out: any format soundfile reads (wav, flac, ogg, mp3, ...), soxr resampling.

Waveforms are float32 tensors [C, N] in [-1, 1] (a batch dimension is added by callers).

Training data goes through `checked_info` and `read_checked`: a file is either read correctly or refused
with a `BadAudio` whose `reason` names why, one of
    "not a file"                 a directory, or missing
    "unreadable"                 soundfile cannot parse a header (random bytes, empty or cut-off header)
    "sample rate out of range"   outside MIN_SAMPLE_RATE..MAX_SAMPLE_RATE (a 1 Hz or a 1 MHz header)
    "no samples"                 a header of zero frames
    "cannot mix channels"        e.g. 8 channels for a stereo model (mono models average any count)
    "decoding failed"            the data after the header (a truncated FLAC, a corrupt frame count)
    "non-finite samples"         NaN or infinity in the samples read, which would poison a loss
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".opus")
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000  # Hz: below, a corrupt header; above, not music (768 kHz DXD is)
BLOCK_FRAMES = 2**20  # frames decoded at a time: a header claiming more frames than the file holds costs no memory


class BadAudio(ValueError):
    """A file that data loading skips: `reason` is the short category that summaries count, `detail` the specifics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


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


def can_mix(from_channels: int, to_channels: int) -> bool:
    """Whether `mix_channels` turns `from_channels` into `to_channels`: matching counts, to mono, or from mono."""
    return from_channels == to_channels or to_channels == 1 or from_channels == 1


def mix_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """wav [C, N] -> [channels, N]: average down to mono, repeat mono up, keep matching counts."""
    if not can_mix(wav.shape[0], channels):
        raise ValueError(f"cannot mix {wav.shape[0]} channels to {channels}; expected mono, or {channels} channels")
    if wav.shape[0] == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=0, keepdim=True)
    return wav.expand(channels, -1).contiguous()


def read_audio(path: str | Path, sample_rate: int | None = None, channels: int | None = None,
               start: float = 0.0, *, duration: float | None = None) -> torch.Tensor:
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
        data = read_blocks(handle, frames)
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if channels is not None:
        wav = mix_channels(wav, channels)
    if sample_rate is not None:
        wav = resample(wav, file_rate, sample_rate)
    return wav


def read_blocks(handle: soundfile.SoundFile, frames: int) -> np.ndarray:
    """Up to `frames` frames from the handle's position (to the end when negative): float32 [N, C].

    Read BLOCK_FRAMES at a time until the decoder has no more: memory follows the data, not the header's frame count.
    """
    blocks, left = [], frames if frames >= 0 else float("inf")
    while left > 0:
        block = handle.read(int(min(BLOCK_FRAMES, left)), dtype="float32", always_2d=True)
        if len(block) == 0:
            break
        blocks.append(block)
        left -= len(block)
    return np.concatenate(blocks) if blocks else np.zeros((0, handle.channels), np.float32)


def checked_info(path: str | Path) -> AudioInfo:
    """Header facts of a file training can use; raises BadAudio ("not a file", "unreadable",
    "sample rate out of range", "no samples") for any other."""
    path = Path(path)
    if not path.is_file():
        raise BadAudio("not a file", f"{path} is a directory" if path.is_dir() else f"{path} is missing")
    try:
        info = audio_info(path)
    except Exception as error:  # noqa: BLE001 - whatever soundfile raises on these bytes, they are not audio it reads
        raise BadAudio("unreadable", _describe(error)) from error
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise BadAudio("sample rate out of range",
                       f"{info.sample_rate} Hz, accepted {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
    if info.frames == 0:
        raise BadAudio("no samples")
    return info


def read_checked(path: str | Path, sample_rate: int, channels: int, start: float = 0.0,
                 *, duration: float | None = None) -> torch.Tensor:
    """`read_audio` for training: float32 [channels, N] at `sample_rate`, every sample finite.

    Raises BadAudio with the reasons of `checked_info`, or "cannot mix channels", "decoding failed" (anything the
    decoder or resampler raises on this file), "non-finite samples".
    """
    info = checked_info(path)
    if not can_mix(info.channels, channels):
        raise BadAudio("cannot mix channels", f"{info.channels} channels to {channels}")
    try:
        wav = read_audio(path, sample_rate, channels, start, duration=duration)
    except Exception as error:  # noqa: BLE001 - decoding this file's content failed, whatever the exception
        raise BadAudio("decoding failed", _describe(error)) from error
    finite = torch.isfinite(wav)
    if not finite.all():
        raise BadAudio("non-finite samples",
                       f"{int((~finite).sum())} of the {wav.numel()} samples read are NaN or infinite")
    return wav


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


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
