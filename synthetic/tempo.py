"""Tempo from the autocorrelation of an onset-strength envelope (log-mel spectral flux).

Independent of any generative model, so it can judge generated audio: the evaluation runs it
on drum prompts and counts estimates within 8% of the BPM the prompt asked for.
"""
from __future__ import annotations

import math

import torch

from infra.mel import MelSpectrogram, log_mel

ONSET_FRAME_RATE = 100.0
ONSET_MELS = 40
LOCAL_MEAN_SECONDS = 0.5
ACCENT_POWER = 1.5  # raising the envelope favours strong onsets (kick, snare) over hats and melody
HALF_LAG_RATIO = 0.8  # a lag gives way to its half when the half correlates at least this well
BLUR_FRAMES = 1.0  # Gaussian blur of the envelope, so beats between frames still line up


def onset_strength(audio: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, float]:
    """audio: [N] float -> (envelope [F], frames per second): positive log-mel flux above its local mean."""
    if audio.dim() != 1:
        raise ValueError(f"audio must be one channel [N], got shape {tuple(audio.shape)}")
    hop = max(1, round(sample_rate / ONSET_FRAME_RATE))
    n_fft = 2 ** math.ceil(math.log2(4 * hop))
    if audio.numel() < n_fft:
        raise ValueError(f"audio is too short for a tempo estimate: {audio.numel()} samples, need at least {n_fft}")
    mel = MelSpectrogram(sample_rate, n_fft, hop, n_mels=ONSET_MELS)(audio[None].float())[0]
    flux = torch.relu(torch.diff(log_mel(mel), dim=-1)).mean(dim=0)
    width = int(LOCAL_MEAN_SECONDS * sample_rate / hop) | 1
    local_mean = torch.nn.functional.avg_pool1d(flux[None, None], width, stride=1, padding=width // 2,
                                                count_include_pad=False)[0, 0]
    return torch.relu(flux - local_mean), sample_rate / hop


def gaussian_blur(signal: torch.Tensor, sigma: float) -> torch.Tensor:
    """signal: [F] convolved with a normalised Gaussian of `sigma` frames (same length)."""
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=signal.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma).square())
    kernel = kernel / kernel.sum()
    return torch.nn.functional.conv1d(signal[None, None], kernel[None, None], padding=radius)[0, 0]


def autocorrelation(envelope: torch.Tensor) -> torch.Tensor:
    """Biased autocorrelation [F] of a zero-mean copy of `envelope`, 1 at lag 0 (0 for a flat envelope)."""
    centred = envelope - envelope.mean()
    size = 2 ** math.ceil(math.log2(2 * centred.numel()))
    spectrum = torch.fft.rfft(centred.double(), size)
    correlation = torch.fft.irfft(spectrum.abs().square(), size)[: centred.numel()]
    return (correlation / correlation[0]).float() if correlation[0] > 0 else torch.zeros_like(envelope)


def estimate_tempo(audio: torch.Tensor, sample_rate: int, min_bpm: float = 55.0, max_bpm: float = 200.0) -> float:
    """audio: [N] -> beats per minute.

    The strongest autocorrelation lag in the BPM range is often two beats (kick and snare
    alternate), so it is halved while its half still correlates almost as well; the beat lag is
    then refined to sub-frame precision at the farthest multiple of it that the clip covers.
    """
    if not 0 < min_bpm < max_bpm:
        raise ValueError(f"need 0 < min_bpm < max_bpm, got {min_bpm} and {max_bpm}")
    envelope, frame_rate = onset_strength(audio, sample_rate)
    correlation = autocorrelation(gaussian_blur(envelope.pow(ACCENT_POWER), BLUR_FRAMES))
    shortest = max(1, math.floor(60.0 * frame_rate / max_bpm))
    longest = min(correlation.numel() - 2, math.ceil(60.0 * frame_rate / min_bpm))
    if longest <= shortest:
        raise ValueError(f"audio is too short to measure tempi down to {min_bpm} BPM")
    lag = shortest + int(torch.argmax(correlation[shortest:longest + 1]))
    while lag / 2 >= shortest:
        half = round(peak_near(correlation, round(lag / 2), radius=2))
        if correlation[half] < HALF_LAG_RATIO * correlation[lag]:
            break
        lag = half
    multiple = max(1, (correlation.numel() // 2) // lag)
    refined = peak_near(correlation, multiple * lag, radius=multiple) / multiple
    return 60.0 * frame_rate / refined


def peak_near(correlation: torch.Tensor, centre: int, radius: int) -> float:
    """Sub-frame position of the highest point within `radius` of `centre` (parabolic interpolation, moved
    at most half a frame: where the highest point is not a local peak, e.g. at the window's edge on a
    slope, the parabola's vertex can lie anywhere)."""
    low, high = max(1, centre - radius), min(correlation.numel() - 2, centre + radius)
    index = low + int(torch.argmax(correlation[low:high + 1]))
    before, peak, after = (float(value) for value in correlation[index - 1:index + 2])
    curvature = before - 2 * peak + after
    offset = 0.5 * (before - after) / curvature if curvature < 0 else 0.0
    return index + min(0.5, max(-0.5, offset))
