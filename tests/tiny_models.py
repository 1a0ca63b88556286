"""A tiny random MusicGen saved in this project's layout, with a short context so that long-form runs in windows."""
from __future__ import annotations

from pathlib import Path

import torch

from codec import Codec, CodecConfig
from infra.config import load_config, save_config
from musicgen.api import CONFIG_FILE, MusicGen
from musicgen.config import MusicGenConfig

from test_musicgen_hf import build_hf_musicgen

TINY_SAMPLE_RATE = 8000     # the "k4" shape: 8 samples a frame, 1000 frames/s, K=4 codebooks of 32 codes
TINY_FRAME_RATE = 1000


def save_tiny_musicgen(path: Path, max_positions: int = 40) -> Path:
    """Save a random MusicGen (delay pattern) whose LM has `max_positions` positions: max_frames = max_positions - 3."""
    build_hf_musicgen(path / "hf", "k4")
    MusicGen.from_pretrained(path / "hf", device="cpu").save_pretrained(path / "model")
    config = load_config(MusicGenConfig, path / "model" / CONFIG_FILE, [f"lm.max_positions={max_positions}"])
    save_config(config, path / "model" / CONFIG_FILE)
    return path / "model"


def tiny_istft_codec(ratios: tuple[int, ...] = (4, 2)) -> Codec:
    """A random codec with an inverse-STFT decoder (the default model's kind), shaped for the tiny LM: K=4 codebooks
    of 32 codes at TINY_SAMPLE_RATE, hop prod(ratios) (8: TINY_FRAME_RATE; (8, 5, 4): 50 frames/s), seeded."""
    torch.manual_seed(0)
    return Codec(CodecConfig(sample_rate=TINY_SAMPLE_RATE, dimension=8, n_filters=2, ratios=list(ratios),
                             lstm_layers=0, num_codebooks=4, cardinality=32, kmeans_iters=0, decoder="istft",
                             istft_width=16, istft_layers=2)).eval()
