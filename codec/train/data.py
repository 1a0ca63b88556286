"""Training data for the codec: random fixed-length segments from a folder or a JSONL manifest.

Segment `index` is drawn by its own generator seeded with (seed, index), so the batch of a step is a
pure function of the step: a resumed run reads exactly the segments the interrupted one would have
(exactly so when each file reads wholly or not at all; a file that fails once is skipped from then on).
Bad audio never stops training: a file is read correctly or skipped and counted with its reason (see
`infra.audio.BadAudio`), first by its header when the dataset is probed, then by its samples when a segment
is read (a truncated FLAC, NaN samples). Counts per reason are summarised in a warning; only a dataset
without one usable file is an error (ValueError).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from infra.audio import BadAudio, read_checked
from infra.manifest import AudioEntry, SkippedFiles


class SegmentDataset(torch.utils.data.Dataset):
    """Item `index` -> segment float32 [C, segment_samples], a random crop of a random file.

    Files are picked in proportion to their duration; shorter files are zero-padded at the end.
    A file whose segment fails `read_checked` is skipped from then on (`failed`, `skipped`) and the draw is
    made again among the other files; a warning sums the failures up each time their count reaches a power of two.
    Raises ValueError when every file has failed.
    """

    def __init__(self, entries: list[AudioEntry], sample_rate: int, channels: int, segment_samples: int,
                 *, seed: int = 0) -> None:
        if segment_samples < 1:
            raise ValueError(f"segment_samples must be at least 1, got {segment_samples}")
        self.entries = entries
        self.sample_rate = sample_rate
        self.channels = channels
        self.segment_samples = segment_samples
        self.seed = seed
        durations = np.array([entry.duration for entry in entries], dtype=np.float64)
        self.probabilities = durations / durations.sum()
        self.failed: dict[Path, str] = {}
        self.skipped = SkippedFiles()

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        segment_seconds = self.segment_samples / self.sample_rate
        weights = self.probabilities.copy()
        while weights.sum() > 0:
            choice = rng.choice(len(self.entries), p=weights / weights.sum())
            entry = self.entries[choice]
            start = rng.uniform(0.0, max(0.0, entry.duration - segment_seconds))
            wav = self._read_segment(entry.path, start, segment_seconds)
            if wav is not None:
                return _fit_length(wav, self.segment_samples)
            weights[choice] = 0.0
        raise ValueError(f"none of the {len(self.entries)} audio files could be decoded: {self.skipped.summary()}")

    def _read_segment(self, path: Path, start: float, seconds: float) -> torch.Tensor | None:
        """`seconds` of `path` from `start`: [C, N <= segment_samples]; None when the file fails (now or before)."""
        if path in self.failed:
            return None
        try:
            return read_checked(path, self.sample_rate, self.channels, start=start, duration=seconds)
        except BadAudio as error:
            self._skip(path, error)
            return None

    def _skip(self, path: Path, error: BadAudio) -> None:
        """Skip `path` from now on and count it; warn with the counts when their total reaches a power of two."""
        self.failed[path] = str(error)
        self.skipped.add(path, error.reason, error.detail)
        count = len(self.skipped)
        if count & (count - 1) == 0:
            warnings.warn(f"skipping audio files that failed to decode: {count} so far ({self.skipped.summary()}); "
                          f"latest {path} ({error})", stacklevel=4)


def _fit_length(wav: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad [C, N] to [C, length]."""
    if wav.shape[-1] >= length:
        return wav[:, :length]
    return torch.nn.functional.pad(wav, (0, length - wav.shape[-1]))
