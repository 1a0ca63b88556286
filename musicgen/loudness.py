"""Integrated loudness as ITU-R BS.1770-4 measures it, in LUFS (= LKFS): K-weighting, 400 ms blocks, two gates.

    lufs = integrated_loudness(wav, sample_rate)    # wav [C, N]; a full-scale 1 kHz sine in one channel: -3.01

The K-weighting is two biquads, a high shelf (the head's effect) then a high pass. The recommendation tabulates
them at 48 kHz only; `k_weighting` designs them for any rate from the shelf's and the high pass's analogue
parameters that reproduce that table (the fit libebur128 and ffmpeg's ebur128 use). The filter is applied in the
frequency domain over the signal zero-padded by a block: exact but for its impulse response past 0.4 s, which has
decayed by then below float precision.
"""
from __future__ import annotations

import math

import torch

BLOCK_SECONDS = 0.4             # gating block, stepped by a quarter (75 % overlap)
ABSOLUTE_GATE = -70.0           # LUFS: blocks at or below are silence
RELATIVE_GATE = -10.0           # LU below the loudness of the blocks above the absolute gate
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)  # left, right, centre, left and right surround
SHELF_HZ, SHELF_GAIN_DB, SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
SHELF_SLOPE = 0.4996667741545416  # the shelf's mid-band gain, as a power of its high-frequency gain
HIGH_PASS_HZ, HIGH_PASS_Q = 38.13547087602444, 0.5003270373238773


def k_weighting(sample_rate: int) -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
    """The two biquads (b, a) of the K-weighting at sample_rate, a[0] = 1: the high shelf, then the high pass."""
    k = math.tan(math.pi * SHELF_HZ / sample_rate)
    high = 10 ** (SHELF_GAIN_DB / 20)
    mid = high ** SHELF_SLOPE
    norm = 1 + k / SHELF_Q + k * k
    shelf = ((high + mid * k / SHELF_Q + k * k) / norm, 2 * (k * k - high) / norm,
             (high - mid * k / SHELF_Q + k * k) / norm), (1.0, 2 * (k * k - 1) / norm, (1 - k / SHELF_Q + k * k) / norm)
    k = math.tan(math.pi * HIGH_PASS_HZ / sample_rate)
    norm = 1 + k / HIGH_PASS_Q + k * k
    high_pass = (1.0, -2.0, 1.0), (1.0, 2 * (k * k - 1) / norm, (1 - k / HIGH_PASS_Q + k * k) / norm)
    return [shelf, high_pass]


def k_weighted(wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """wav [C, N] -> the K-weighted signal [C, N] float64."""
    length = wav.shape[-1] + round(BLOCK_SECONDS * sample_rate)
    phase = torch.exp(-2j * math.pi * torch.fft.rfftfreq(length, dtype=torch.float64))  # z^-1 on the unit circle
    response = torch.ones_like(phase)
    for b, a in k_weighting(sample_rate):
        response = response * (b[0] + phase * (b[1] + phase * b[2])) / (a[0] + phase * (a[1] + phase * a[2]))
    return torch.fft.irfft(torch.fft.rfft(wav.double(), n=length) * response, n=length)[..., :wav.shape[-1]]


def integrated_loudness(wav: torch.Tensor, sample_rate: int) -> float:
    """The integrated loudness of wav [C, N] (C <= 5, in CHANNEL_WEIGHTS' order) at sample_rate, in LUFS; -inf when
    every block is below the absolute gate. ValueError for audio shorter than one 0.4 s block."""
    if not isinstance(wav, torch.Tensor) or wav.dim() != 2 or not 1 <= wav.shape[0] <= len(CHANNEL_WEIGHTS):
        raise ValueError(f"expected wav [C, N] with 1 to {len(CHANNEL_WEIGHTS)} channels, "
                         f"got {getattr(wav, 'shape', type(wav))}")
    block = round(BLOCK_SECONDS * sample_rate)
    if wav.shape[-1] < block:
        raise ValueError(f"loudness is measured over {BLOCK_SECONDS} s blocks; got {wav.shape[-1] / sample_rate:.3f} s "
                         f"of audio")
    power = k_weighted(wav, sample_rate).pow(2).unfold(-1, block, block // 4).mean(-1)       # [C, blocks]
    weighted = torch.tensor(CHANNEL_WEIGHTS[:wav.shape[0]], dtype=torch.float64) @ power      # [blocks]
    loud = _lufs(weighted) > ABSOLUTE_GATE
    if not loud.any():
        return -math.inf
    gated = loud & (_lufs(weighted) > _lufs(weighted[loud].mean()) + RELATIVE_GATE)
    return _lufs(weighted[gated].mean()).item()


def _lufs(power: torch.Tensor) -> torch.Tensor:
    """Channel-weighted mean square power -> LUFS."""
    return -0.691 + 10 * torch.log10(power)
