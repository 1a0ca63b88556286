"""LM training items: random windows of cached tokens with their captions, word and condition dropout.

Item `index` is drawn by its own generator seeded with (seed, index), and the batch of a step is
items [step * batch, (step + 1) * batch) (`infra.batches.StepBatchSampler`): what a step reads
depends only on the step, neither on the number of processes nor on where a run was resumed.
"""
from __future__ import annotations

import numpy as np
import torch

from .melody import MelodyStems
from .token_cache import TokenCache


def drop_words(caption: str, probability: float, rng: np.random.Generator) -> str:
    """Each whitespace-separated word of `caption` is left out with `probability`."""
    if probability <= 0:
        return caption
    return " ".join(word for word in caption.split() if rng.random() >= probability)


class CaptionedSegments(torch.utils.data.Dataset):
    """Item `index` -> (codes [K, segment_frames] int64, caption str, the clip frame the window starts at), and with
    `melody` the window's chroma [T_c, bins] (musicgen/train/melody.py).

    Clips are picked in proportion to their length and cropped at a random frame, or with
    `clip_start_probability` at their first frame, where generation starts too (with no audio
    context yet, the caption alone sets the tempo there); a clip shorter than the segment is
    padded with `special_token`, which the loss never scores. The caption loses
    words with `word_dropout`, then becomes "" (the null condition) with `condition_dropout`. The chroma is that of
    the same span of the clip's melody stem, or the "no melody" chroma for a window whose caption was dropped (as
    audiocraft's classifier-free guidance dropout drops every condition) and, besides, with `melody_dropout`.
    """

    def __init__(self, cache: TokenCache, segment_frames: int, special_token: int, seed: int = 0,
                 *, condition_dropout: float = 0.0, word_dropout: float = 0.0,
                 clip_start_probability: float = 0.0, melody: MelodyStems | None = None,
                 melody_dropout: float = 0.0) -> None:
        if segment_frames < 1:
            raise ValueError(f"segment_frames must be at least 1, got {segment_frames}")
        for name, value in (("condition_dropout", condition_dropout), ("word_dropout", word_dropout),
                            ("clip_start_probability", clip_start_probability),
                            ("melody_dropout", melody_dropout)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.cache = cache
        self.segment_frames = segment_frames
        self.special_token = special_token
        self.seed = seed
        self.condition_dropout = condition_dropout
        self.word_dropout = word_dropout
        self.clip_start_probability = clip_start_probability
        self.melody = melody
        self.melody_dropout = melody_dropout
        frames = cache.frames.astype(np.float64)
        self.probabilities = frames / frames.sum()

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, int] | tuple[torch.Tensor, str, int, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        clip = int(rng.choice(len(self.cache), p=self.probabilities))
        # (no draw at probability 0, so the windows of runs without the option stay what they were)
        from_clip_start = self.clip_start_probability > 0 and rng.random() < self.clip_start_probability
        latest_start = max(0, self.cache.clips[clip]["frames"] - self.segment_frames)
        start = 0 if from_clip_start else int(rng.integers(0, latest_start + 1))
        codes = self.cache.window(clip, start, self.segment_frames, self.special_token)
        caption = drop_words(self.cache.description(clip), self.word_dropout, rng)
        dropped = rng.random() < self.condition_dropout
        if dropped:
            caption = ""
        if self.melody is None:
            return codes, caption, start
        # (drawn after the others, so that the windows and captions stay those of a run without a melody)
        if dropped or rng.random() < self.melody_dropout:
            return codes, caption, start, self.melody.silence(self.segment_frames)
        return codes, caption, start, self.melody.window(clip, start, self.segment_frames)
