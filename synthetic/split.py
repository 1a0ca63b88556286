"""Which (instrument, tempo bucket, key) combinations are held out of training, and sampling
piece specs on either side of that line.

The rule is fixed arithmetic, no hash: with i the instrument's index, b the tempo bucket's
index and k = tonic + 12 * (mode == minor), a combination is held out when
(i + 3 b + k) % 8 == 0. That holds out exactly one combination in eight while every pair
(instrument and bucket, instrument and key, bucket and key) still appears in training: each
pair has at most 3 of its 4 to 24 completions held out, never all of them.
"""
from __future__ import annotations

import numpy as np

from .compose import DENSITIES, INSTRUMENTS, MODES, PieceSpec

SPLITS = ("train", "heldout")
BPM_CHOICES = tuple(range(60, 181, 10))
TEMPO_BUCKETS = {"slow": (60, 80), "moderate": (90, 110), "upbeat": (120, 140), "fast": (150, 180)}
DRUMS_PROBABILITY = 0.6
HELDOUT_MODULUS = 8
CAPTION_STREAM = 1


def tempo_bucket(bpm: int) -> str:
    """The name of the bucket holding `bpm` (bounds inclusive)."""
    for name, (low, high) in TEMPO_BUCKETS.items():
        if low <= bpm <= high:
            return name
    raise ValueError(f"bpm must lie in one of the tempo buckets {TEMPO_BUCKETS}, got {bpm}")


def key_index(tonic: int, mode: str) -> int:
    """0..11 for the major keys C..B, 12..23 for the minor keys."""
    return tonic + 12 * MODES.index(mode)


def combination_code(instrument: str, bpm: int, tonic: int, mode: str) -> int:
    return list(INSTRUMENTS).index(instrument) + 3 * list(TEMPO_BUCKETS).index(tempo_bucket(bpm)) + key_index(tonic, mode)


def is_heldout(instrument: str, bpm: int, tonic: int, mode: str) -> bool:
    """True when the (instrument, tempo bucket, key) combination never appears in training."""
    return combination_code(instrument, bpm, tonic, mode) % HELDOUT_MODULUS == 0


def sample_spec(rng: np.random.Generator, split: str) -> PieceSpec:
    """A random piece on the given side of the split; uniform over instruments, tempi and densities."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    instrument = str(rng.choice(list(INSTRUMENTS)))
    bpm = int(rng.choice(BPM_CHOICES))
    keys = [(tonic, mode) for mode in MODES for tonic in range(12)
            if is_heldout(instrument, bpm, tonic, mode) == (split == "heldout")]
    tonic, mode = keys[rng.integers(len(keys))]
    drums = bool(rng.random() < DRUMS_PROBABILITY)
    density = str(rng.choice(DENSITIES))
    return PieceSpec(instrument, bpm, tonic, mode, drums, density)


def clip_rng(seed: int, index: int, split: str) -> np.random.Generator:
    """The generator behind clip `index` of a split: independent of how clips are spread over workers."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def caption_rng(seed: int, index: int, split: str) -> np.random.Generator:
    """The generator behind the caption of clip `index`: a stream of its own, so that rewording the captions
    leaves the music (drawn from `clip_rng`) as it was."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index, CAPTION_STREAM]))
