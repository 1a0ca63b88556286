"""Audio written inside tests (no data files in the repository): tones and noise via soundfile; a tiny codec."""
import math
from pathlib import Path

import numpy as np
import soundfile
import torch

from codec import Codec, CodecConfig


def tiny_codec(sample_rate: int = 8000) -> Codec:
    """A random codec in eval mode: hop 8, K=2 codebooks of 16 codes, seeded."""
    torch.manual_seed(0)
    return Codec(CodecConfig(sample_rate=sample_rate, dimension=8, n_filters=2, ratios=[4, 2], lstm_layers=0,
                             num_codebooks=2, cardinality=16, kmeans_iters=0)).eval()


def sine(frequency: float, seconds: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    """[N, C] float32 sine of amplitude 0.5, the layout soundfile writes."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.5 * np.sin(2 * math.pi * frequency * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1)


def write_tones(folder: Path, count: int = 3, seconds: float = 1.0, sample_rate: int = 8000) -> list[Path]:
    """`count` wav files of two-tone chords with a little noise, each with other pitches."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        chord = sine(220 * 1.25**index, seconds, sample_rate) + 0.5 * sine(330 * 1.2**index, seconds, sample_rate)
        noisy = chord + 0.02 * rng.standard_normal(chord.shape).astype(np.float32)
        paths.append(folder / f"tone{index}.wav")
        soundfile.write(paths[-1], noisy, sample_rate)
    return paths
