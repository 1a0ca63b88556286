"""Mel spectrograms in plain torch (torchaudio has no build for current torch)."""
from __future__ import annotations

import math

import torch
from torch import nn


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, *,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular filters [n_mels, n_fft // 2 + 1] mapping a power spectrum to mel bands."""
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = torch.linspace(hz_to_mel(torch.tensor(f_min)), hz_to_mel(torch.tensor(f_max)), n_mels + 2)
    hz_points = mel_to_hz(mel_points)
    lower, center, upper = hz_points[:-2, None], hz_points[1:-1, None], hz_points[2:, None]
    rising = (fft_freqs - lower) / (center - lower)
    falling = (upper - fft_freqs) / (upper - center)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class MelSpectrogram(nn.Module):
    """wav [B, C, N] -> power mel spectrogram [B, C, n_mels, frames] (Hann window, centered frames)."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int | None = None, n_mels: int = 64,
                 *, f_min: float = 0.0, f_max: float | None = None, power: float = 2.0) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length or n_fft // 4
        self.power = power
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max=f_max),
                             persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        batch_shape = wav.shape[:-1]
        flat = wav.reshape(-1, wav.shape[-1]).float()
        padding = min(self.n_fft // 2, flat.shape[-1] - 1)
        spec = torch.stft(flat, self.n_fft, self.hop_length, window=self.window, center=True,
                          pad_mode="reflect" if padding == self.n_fft // 2 else "constant", return_complex=True)
        magnitude = spec.abs().pow(self.power)
        mel = torch.matmul(self.filters, magnitude)
        return mel.reshape(*batch_shape, mel.shape[-2], mel.shape[-1])


def log_mel(mel: torch.Tensor, floor: float = 1e-5) -> torch.Tensor:
    """Natural-log mel with a floor, the usual input of mel losses and MFCCs."""
    return torch.log(torch.clamp(mel, min=floor))


def dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II [n_mels, n_mfcc]: log-mel @ dct -> MFCC."""
    n = torch.arange(n_mels, dtype=torch.float32)
    k = torch.arange(n_mfcc, dtype=torch.float32)[None, :]
    basis = torch.cos(math.pi / n_mels * (n[:, None] + 0.5) * k)
    basis[:, 0] *= 1.0 / math.sqrt(2.0)
    return basis * math.sqrt(2.0 / n_mels)
