"""Chroma: which pitch class is loudest in each STFT frame of a melody, one-hot, as transformers'
MusicgenMelodyFeatureExtractor (and audiocraft's ChromaExtractor with argmax) computes it for MusicGen's melody models.

    wav [B, N] ─► zero-padded on both sides to n_fft when shorter
              ─► power spectrogram [B, n_fft/2 + 1, T]: Hann window of n_fft, frames centred every hop_length
                 (reflect padding at the ends), divided by the window's L2 norm before squaring
              ─► chroma filter bank [bins, n_fft/2 + 1] (librosa's, tuning 0) ─► [B, bins, T]
              ─► each frame divided by its largest bin (`chroma_energy`) ─► one-hot of the largest [B, T, bins]

T = 1 + max(N, n_fft) // hop_length. A silent frame's chroma is bin 0, which is also the "no melody" chroma of
MusicGen's melody models (`null_chroma`). The wav must be at the rate the filter bank is built for (the codec's):
musicgen/melody.py brings a melody at another rate there with infra/audio.py's soxr `resample`, where transformers'
feature extractor uses torchaudio's sinc resampler, so a melody at another rate may get a different chroma in a frame
whose two loudest pitch classes are close.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from transformers.audio_utils import chroma_filter_bank

NORM_EPS = 1e-6


@functools.lru_cache(maxsize=4)
def chroma_filters(sample_rate: int, n_fft: int, bins: int) -> torch.Tensor:
    """The chroma filter bank [bins, n_fft // 2 + 1] float32 of an n_fft-point STFT at sample_rate."""
    bank = chroma_filter_bank(sampling_rate=sample_rate, num_frequency_bins=n_fft, tuning=0, num_chroma=bins)
    return torch.from_numpy(bank).float()


def power_spectrogram(wav: torch.Tensor, *, n_fft: int, hop_length: int) -> torch.Tensor:
    """wav [B, N] float32 (N > n_fft // 2) -> |STFT|² [B, n_fft // 2 + 1, 1 + N // hop_length], the window's L2 norm
    divided out (torchaudio's Spectrogram(power=2, normalized=True), on torch.stft)."""
    window = torch.hann_window(n_fft, device=wav.device)
    spectrum = torch.stft(wav, n_fft=n_fft, hop_length=hop_length, win_length=n_fft, window=window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    spectrum /= window.pow(2.0).sum().sqrt()
    return spectrum.abs().pow(2.0)


def frame_count(samples: int, *, n_fft: int, hop_length: int) -> int:
    """The chroma frames T of a wav of `samples` samples: 1 + max(samples, n_fft) // hop_length."""
    return 1 + max(samples, n_fft) // hop_length


def chroma(wav: torch.Tensor, *, sample_rate: int, n_fft: int, hop_length: int, bins: int) -> torch.Tensor:
    """wav [B, N] float at sample_rate -> one-hot chroma [B, T, bins] float32, T = `frame_count(N)`."""
    energy = chroma_energy(wav, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, bins=bins)
    return torch.zeros_like(energy).scatter_(-1, energy.argmax(-1, keepdim=True), 1.0)


def chroma_energy(wav: torch.Tensor, *, sample_rate: int, n_fft: int, hop_length: int, bins: int) -> torch.Tensor:
    """wav [B, N] float at sample_rate -> the chroma before its one-hot: each frame's energy per pitch class divided by
    its largest, [B, T, bins] float32 in [0, 1], T = `frame_count(N)` (a silent frame: all zero)."""
    if wav.dim() != 2 or wav.shape[-1] < 1:
        raise ValueError(f"wav must be [B, N] with N >= 1, got {tuple(wav.shape)}")
    wav = wav.float()
    if wav.shape[-1] < n_fft:
        missing = n_fft - wav.shape[-1]
        wav = F.pad(wav, (missing // 2, missing - missing // 2))
    spectrogram = power_spectrogram(wav, n_fft=n_fft, hop_length=hop_length)
    filters = chroma_filters(sample_rate, n_fft, bins).to(wav.device)
    raw = torch.einsum("cf,...ft->...ct", filters, spectrogram)
    return F.normalize(raw, p=math.inf, dim=-2, eps=NORM_EPS).transpose(1, 2)


def null_chroma(batch: int, frames: int, bins: int, *, dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """The "no melody" chroma [batch, frames, bins]: bin 0 in every frame, the chroma of silence."""
    rows = torch.zeros(batch, frames, bins, dtype=dtype, device=device)
    rows[..., 0] = 1
    return rows


def tile_frames(rows: torch.Tensor, frames: int) -> torch.Tensor:
    """rows [B, T, D] -> [B, frames, D]: repeated whole until there are enough, then cut (a melody shorter than the
    chroma the model takes is looped, a longer one cut)."""
    return rows.repeat(1, math.ceil(frames / rows.shape[1]), 1)[:, :frames]


def rows_by_step(rows: torch.Tensor, steps: int, stride: float) -> torch.Tensor:
    """Projected chroma rows [B, R, D] -> those of the frames steps 0 .. steps - 1 predict [B, steps, D] (an LM's
    time-aligned chroma, lm.chroma_stride): step s + 1 sounds at row (s + 1) / stride, rounded; steps past the last
    row get the last one."""
    sounding = torch.round(torch.arange(1, steps + 1, device=rows.device) / stride).long()
    return rows[:, sounding.clamp(max=rows.shape[1] - 1)]
