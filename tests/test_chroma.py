"""Chroma (musicgen/chroma.py, musicgen/melody.py) against transformers' MusicgenMelodyFeatureExtractor.

torchaudio has no build here: the extractor runs on a stand-in for the one torchaudio call it makes at the
model's rate (transforms.Spectrogram), written from torchaudio's functional.spectrogram.
"""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
import transformers.models.musicgen_melody.feature_extraction_musicgen_melody as extraction

from infra.audio import resample
from musicgen.chroma import chroma, null_chroma, tile_frames
from musicgen.config import ChromaConfig
from musicgen.long_form import Window
from musicgen.melody import Melody

A4 = 440.0
PITCH_CLASS_A = 9  # bins run C, C#, D, ..., B


class StandInSpectrogram(torch.nn.Module):
    """torchaudio.transforms.Spectrogram(pad=0, center=True, ...) as torchaudio.functional.spectrogram computes it:
    torch.stft with a periodic Hann window, reflect padding, onesided, over the flattened leading dimensions; then
    normalized=True divides by the window's L2 norm and power raises the magnitude."""

    def __init__(self, n_fft: int, win_length: int, hop_length: int, power: float, center: bool, pad: int,
                 normalized: bool) -> None:
        super().__init__()
        assert center and pad == 0 and normalized is True
        self.n_fft, self.win_length, self.hop_length, self.power = n_fft, win_length, hop_length, power
        self.window = torch.hann_window(win_length)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        flat = waveform.reshape(-1, waveform.shape[-1])
        spectrum = torch.stft(flat, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                              window=self.window, center=True, pad_mode="reflect", normalized=False, onesided=True,
                              return_complex=True)
        spectrum = spectrum.reshape(waveform.shape[:-1] + spectrum.shape[-2:])
        spectrum /= self.window.pow(2.0).sum().sqrt()
        return spectrum.abs().pow(self.power)


def refuse_resampling(*args, **kwargs):
    raise AssertionError("the stand-in resamples nothing: give the extractor audio at its own rate")


def on_stand_in(monkeypatch: pytest.MonkeyPatch) -> type:
    """transformers' MusicgenMelodyFeatureExtractor class, set to run on the torchaudio stand-in (the class itself:
    transformers' top level offers a placeholder without torchaudio)."""
    stand_in = types.SimpleNamespace(transforms=types.SimpleNamespace(Spectrogram=StandInSpectrogram),
                                     functional=types.SimpleNamespace(resample=refuse_resampling))
    monkeypatch.setattr(extraction, "torchaudio", stand_in, raising=False)
    return extraction.MusicgenMelodyFeatureExtractor


@pytest.fixture
def feature_extractor(monkeypatch):
    return on_stand_in(monkeypatch)


def notes(seconds: float, sample_rate: int, seed: int, *, note_seconds: float = 0.4, channels: int = 1) -> torch.Tensor:
    """[channels, N] float32: a random tune of sine notes (a fifth above, softer, on a second channel)."""
    generator = torch.Generator().manual_seed(seed)
    count = math.ceil(seconds / note_seconds)
    pitches = 220.0 * 2 ** (torch.randint(0, 24, (count,), generator=generator) / 12)
    time = torch.arange(round(seconds * sample_rate)) / sample_rate
    frequency = pitches[(time / note_seconds).long().clamp(max=count - 1)]
    phase = 2 * math.pi * torch.cumsum(frequency / sample_rate, dim=0)
    voices = [torch.sin(phase), 0.3 * torch.sin(1.5 * phase)][:channels]
    return (0.5 * torch.stack(voices)).float()


def melody_chroma(wavs: list[torch.Tensor | None], sample_rate: int, *, bins: int = 12,
                  settings: ChromaConfig | None = None, model_rate: int | None = None) -> torch.Tensor:
    """Our chroma [B, T, bins] of one window's melodies, given at sample_rate to a model at model_rate."""
    melody = Melody.prepare(wavs, sample_rate, prompts=len(wavs), sample_rate=model_rate or sample_rate,
                            settings=settings or ChromaConfig(), bins=bins, hop_length=8, window_frames=100)
    return melody.window_chromas([Window(start=0, known=0, end=10)])[0]


@pytest.mark.parametrize("sample_rate, bins", [(32000, 12), (8000, 12), (8000, 24)])
def test_chroma_matches_transformers_feature_extractor(feature_extractor, sample_rate, bins):
    extractor = feature_extractor(sampling_rate=sample_rate, num_chroma=bins)
    wavs = [notes(3.0, sample_rate, seed=0), notes(1.3, sample_rate, seed=1, channels=2),
            notes(0.6, sample_rate, seed=2)]  # the last shorter than n_fft: zero-padded on both sides
    expected = extractor([wav.numpy() for wav in wavs], sampling_rate=sample_rate, return_tensors="pt").input_features
    ours = melody_chroma(wavs, sample_rate, bins=bins)
    assert ours.shape == expected.shape == (3, 1 + round(3.0 * sample_rate) // 4096, bins)
    assert (ours - expected).abs().max() < 1e-5
    assert torch.equal(ours.sum(-1), torch.ones(ours.shape[:2])), "one-hot"
    assert len(set(ours[0].argmax(-1).tolist())) > 2, "a tune of several notes has several pitch classes"


def test_a_melody_past_max_seconds_is_cut_as_transformers_cuts_it(feature_extractor):
    extractor = feature_extractor(sampling_rate=8000, chunk_length=3)
    wavs = [notes(3.7, 8000, seed=3), notes(1.0, 8000, seed=4)]
    expected = extractor([wav.numpy() for wav in wavs], sampling_rate=8000, return_tensors="pt").input_features
    ours = melody_chroma(wavs, 8000, settings=ChromaConfig(max_seconds=3.0))
    assert ours.shape == expected.shape == (2, 1 + 24000 // 4096, 12)
    assert torch.equal(ours, expected)


def test_no_melody_is_the_chroma_of_silence(feature_extractor):
    silent = feature_extractor(sampling_rate=8000)([np.zeros(20000)], sampling_rate=8000, return_tensors="pt")
    assert torch.equal(silent.input_features, null_chroma(1, 1 + 20000 // 4096, 12))
    ours = melody_chroma([notes(1.0, 8000, seed=5), None], 8000)
    assert torch.equal(ours[1], null_chroma(1, ours.shape[1], 12)[0])
    assert not torch.equal(ours[0], ours[1])


def test_a_tone_is_its_pitch_class_at_any_rate():
    tone = 0.3 * torch.sin(2 * math.pi * A4 * torch.arange(16000) / 16000)[None]
    direct = chroma(resample(tone, 16000, 8000), sample_rate=8000, n_fft=16384, hop_length=4096, bins=12)
    through_melody = melody_chroma([tone], 16000, model_rate=8000)
    assert torch.equal(direct, through_melody)
    assert direct.argmax(-1).eq(PITCH_CLASS_A).all()


def test_tile_frames_repeats_whole_then_cuts():
    rows = torch.arange(3.0).view(1, 3, 1)
    assert tile_frames(rows, 7).flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert tile_frames(rows, 2).flatten().tolist() == [0, 1]
