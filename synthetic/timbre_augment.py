"""Degradations for training the timbre analyser, so that it judges an instrument's timbre and not one SoundFont's
samples or a clean channel: random EQ, reverb, band limits, codec-like damage and noise.

Every function takes audio [B, N] float32 and a torch.Generator and returns a new [B, N] tensor; each clip draws
its own settings. `augment` chains them, each applied to a clip with probability `probability`.
"""
from __future__ import annotations

import math

import torch

EQ_BANDS = 4
EQ_GAIN_DB = 9.0
EQ_WIDTH_OCTAVES = (0.5, 2.0)
EQ_GRID = 256
REVERB_RT60_SECONDS = (0.1, 1.2)
REVERB_WET = (0.1, 0.6)
LOWPASS_RANGE_HZ = (2000.0, 8000.0)
MU_LAW_BITS = (5, 8)
RESAMPLE_RANGE_HZ = (6000.0, 12000.0)
SMEAR_BINS = (3, 9)
SMEAR_FFT = 512
NOISE_SNR_RANGE_DB = (10.0, 40.0)


def uniform(low: float, high: float, count: int, generator: torch.Generator) -> torch.Tensor:
    """[count, 1] uniform draws in [low, high)."""
    return torch.empty(count, 1).uniform_(low, high, generator=generator)


def random_eq(audio: torch.Tensor, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """A smooth random gain curve: EQ_BANDS bell bands of +-EQ_GAIN_DB, spaced at random on a log-frequency axis
    (drawn on EQ_GRID points from 20 Hz to Nyquist, then interpolated to every FFT bin)."""
    top = math.log2(sample_rate / 2 / 20.0)
    octaves = torch.linspace(0.0, top, EQ_GRID)
    centre, width, gain = (torch.empty(audio.shape[0], EQ_BANDS, 1).uniform_(low, high, generator=generator)
                           for low, high in ((0.0, top), EQ_WIDTH_OCTAVES, (-EQ_GAIN_DB, EQ_GAIN_DB)))
    gain_db = (gain * torch.exp(-0.5 * ((octaves - centre) / width).square())).sum(dim=1)  # [B, EQ_GRID]
    frequencies = torch.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate)
    position = (torch.log2(frequencies.clamp(min=20.0) / 20.0) / top * (EQ_GRID - 1)).clamp(max=EQ_GRID - 1)
    below = position.floor().long().clamp(max=EQ_GRID - 2)
    curve = torch.lerp(gain_db[:, below], gain_db[:, below + 1], position - below)
    return torch.fft.irfft(torch.fft.rfft(audio) * 10.0 ** (curve / 20.0), audio.shape[-1])


def reverb(audio: torch.Tensor, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """A synthetic room: exponentially decaying noise (RT60 drawn per clip), mixed in at a random wet level."""
    rt60 = uniform(*REVERB_RT60_SECONDS, audio.shape[0], generator)
    length = int(REVERB_RT60_SECONDS[1] * sample_rate)
    time = torch.arange(length) / sample_rate
    response = torch.randn(audio.shape[0], length, generator=generator) * torch.exp(-6.9 * time / rt60)
    response = response / response.square().sum(dim=-1, keepdim=True).sqrt()
    size = audio.shape[-1] + length
    wet = torch.fft.irfft(torch.fft.rfft(audio, size) * torch.fft.rfft(response, size), size)[:, :audio.shape[-1]]
    mix = uniform(*REVERB_WET, audio.shape[0], generator)
    return (1.0 - mix) * audio + mix * wet * rms(audio) / rms(wet).clamp(min=1e-8)


def lowpass(audio: torch.Tensor, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """Band-limited at a random cutoff in LOWPASS_RANGE_HZ (an FFT mask with a half-octave roll-off)."""
    frequencies = torch.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate)
    cutoff = uniform(*LOWPASS_RANGE_HZ, audio.shape[0], generator)
    response = torch.clamp(1.0 - 2.0 * torch.log2(frequencies.clamp(min=1.0) / cutoff), 0.0, 1.0)
    return torch.fft.irfft(torch.fft.rfft(audio) * response, audio.shape[-1])


def mu_law(audio: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mu-law companded and quantised to a random 5-8 bits a sample, as a low-rate speech codec does."""
    bits = torch.randint(MU_LAW_BITS[0], MU_LAW_BITS[1] + 1, (audio.shape[0], 1), generator=generator)
    levels = 2.0 ** bits - 1.0
    peak = audio.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8)
    mu = 255.0
    companded = torch.sign(audio / peak) * torch.log1p(mu * (audio / peak).abs()) / math.log1p(mu)
    quantised = torch.round((companded + 1.0) / 2.0 * levels) / levels * 2.0 - 1.0
    return torch.sign(quantised) * torch.expm1(quantised.abs() * math.log1p(mu)) / mu * peak


def resample_linear(audio: torch.Tensor, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """Down to a random rate and back with linear interpolation and no filter: aliasing and imaging, as a cheap
    resampler leaves them."""
    rate = float(uniform(*RESAMPLE_RANGE_HZ, 1, generator))
    low = torch.nn.functional.interpolate(audio[:, None], scale_factor=rate / sample_rate, mode="linear")
    return torch.nn.functional.interpolate(low, size=audio.shape[-1], mode="linear")[:, 0]


def smear(audio: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Spectral smearing: the STFT magnitude blurred across a random 3-9 bins, the phase kept, as a codec that
    blurs harmonics does."""
    bins = int(torch.randint(SMEAR_BINS[0], SMEAR_BINS[1] + 1, (1,), generator=generator)) | 1
    window = torch.hann_window(SMEAR_FFT)
    spectrum = torch.stft(audio, SMEAR_FFT, SMEAR_FFT // 4, window=window, return_complex=True)  # [B, F, T]
    magnitude = torch.nn.functional.avg_pool1d(spectrum.abs().transpose(1, 2).reshape(-1, 1, spectrum.shape[1]),
                                               bins, stride=1, padding=bins // 2, count_include_pad=False)
    magnitude = magnitude.reshape(spectrum.shape[0], spectrum.shape[2], -1).transpose(1, 2)
    smeared = torch.polar(magnitude, spectrum.angle())
    return torch.istft(smeared, SMEAR_FFT, SMEAR_FFT // 4, window=window, length=audio.shape[-1])


def codec_like(audio: torch.Tensor, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """One codec-like degradation chosen per call: mu-law quantisation, crude resampling or spectral smearing."""
    choice = int(torch.randint(3, (1,), generator=generator))
    if choice == 0:
        return mu_law(audio, generator)
    if choice == 1:
        return resample_linear(audio, sample_rate, generator)
    return smear(audio, generator)


def add_noise(audio: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """White noise at a random SNR in NOISE_SNR_RANGE_DB."""
    snr_db = uniform(*NOISE_SNR_RANGE_DB, audio.shape[0], generator)
    return audio + rms(audio) * 10.0 ** (-snr_db / 20.0) * torch.randn(audio.shape, generator=generator)


def rms(audio: torch.Tensor) -> torch.Tensor:
    """[B, N] -> [B, 1]."""
    return audio.square().mean(dim=-1, keepdim=True).sqrt()


def augment(audio: torch.Tensor, sample_rate: int, generator: torch.Generator,
            probability: float = 0.5) -> torch.Tensor:
    """audio [B, N] through EQ, reverb, low-pass, codec-like damage and noise, each on a random subset of clips."""
    steps = [lambda x: random_eq(x, sample_rate, generator), lambda x: reverb(x, sample_rate, generator),
             lambda x: lowpass(x, sample_rate, generator), lambda x: codec_like(x, sample_rate, generator),
             lambda x: add_noise(x, generator)]
    for step in steps:
        chosen = torch.rand(audio.shape[0], generator=generator) < probability
        if chosen.any():
            audio = audio.clone()
            audio[chosen] = step(audio[chosen])
    return audio
