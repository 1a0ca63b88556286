"""A log-mel spectrogram as a PNG image, written without an imaging library (the web app's result pages and
musicgen-eval's figures)."""
from __future__ import annotations

import struct
import zlib

import torch

from .mel import MelSpectrogram, log_mel

SPECTROGRAM_MELS = 80
SPECTROGRAM_WIDTH = 400
DYNAMIC_RANGE_DB = 80.0


def spectrogram_png(wav: torch.Tensor, sample_rate: int) -> bytes:
    """wav [C, N] -> a PNG of its channels' mean log-mel spectrogram (low notes at the bottom, SPECTROGRAM_MELS rows,
    about SPECTROGRAM_WIDTH columns), DYNAMIC_RANGE_DB below the loudest bin in a dark-to-light colour scale."""
    n_fft = 1024 if sample_rate >= 16000 else 256
    hop = max(1, wav.shape[-1] // SPECTROGRAM_WIDTH)
    mel = MelSpectrogram(sample_rate, n_fft, hop, SPECTROGRAM_MELS)(wav.float().cpu()[None]).mean(dim=(0, 1))
    decibels = 10 / torch.log(torch.tensor(10.0)) * log_mel(mel, floor=1e-10)
    level = ((decibels - decibels.max()) / DYNAMIC_RANGE_DB + 1).clamp(0, 1).flip(0)  # [mels, frames] in [0, 1]
    return png_bytes(_colour(level))


def _colour(level: torch.Tensor) -> torch.Tensor:
    """level [H, W] in [0, 1] -> RGB [H, W, 3] uint8: black through purple and orange to pale yellow."""
    stops = torch.tensor([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=torch.float32)
    position = level * (len(stops) - 1)
    low = position.floor().long().clamp(max=len(stops) - 2)
    fraction = (position - low)[..., None]
    return (stops[low] * (1 - fraction) + stops[low + 1] * fraction).round().to(torch.uint8)


def png_bytes(rgb: torch.Tensor) -> bytes:
    """rgb [H, W, 3] uint8 -> a PNG file's bytes (8-bit truecolour, one zlib stream, no filtering)."""
    height, width, _ = rgb.shape
    rows = torch.cat([torch.zeros(height, 1, dtype=torch.uint8), rgb.reshape(height, width * 3)], dim=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.numpy().tobytes(), 6)) \
        + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
