"""Training data for the codec: random fixed-length segments from a folder or a JSONL manifest.

Segment `index` is drawn by its own generator seeded with (seed, index), so the batch of a step is a
pure function of the step: a resumed run reads exactly the segments the interrupted one would have
(exactly so when each file reads wholly or not at all; a file that fails once is skipped from then on).
Bad audio never stops training: a file is read correctly or skipped and counted with its reason (see
`codec.audio.BadAudio`), first by its header when the dataset is probed, then by its samples when a segment
is read (a truncated FLAC, NaN samples). Counts per reason are summarised in a warning; only a dataset
without one usable file is an error (ValueError).
"""
from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import AUDIO_EXTENSIONS, BadAudio, checked_info, find_audio_files, read_checked


@dataclass(frozen=True)
class AudioEntry:
    path: Path
    duration: float


@dataclass
class SkippedFiles:
    """Files left out and why: every one as "path (reason: detail)", and how many for each reason."""

    files: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.files.append(f"{path} ({reason}: {detail})" if detail else f"{path} ({reason})")
        self.reasons[reason] += 1

    def __len__(self) -> int:
        return len(self.files)

    def summary(self, shown: int = 5) -> str:
        """Each reason's count, most common first, then the first `shown` files: "2 unreadable, 1 no samples: ..."."""
        counts = ", ".join(f"{count} {reason}" for reason, count in self.reasons.most_common())
        return f"{counts}: " + "; ".join(self.files[:shown]) + (" ..." if len(self.files) > shown else "")


def list_audio_paths(source: str | Path) -> list[Path]:
    """The audio files of a folder (searched recursively) or of a JSONL manifest of {"path": ...} lines.

    Relative manifest paths are taken relative to the manifest's folder.
    """
    source = Path(source)
    if source.is_dir():
        paths = find_audio_files(source)
        if not paths:
            raise ValueError(f"no audio files found under {source} (looked for {', '.join(AUDIO_EXTENSIONS)})")
        return paths
    if source.is_file() and source.suffix == ".jsonl":
        return [Path(record["path"]) for record in read_manifest(source)]
    raise ValueError(f"expected a folder of audio files or a .jsonl manifest, got {source}")


def read_manifest(manifest: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL manifest, one object a line with at least a "path" string.

    Relative paths are made relative to the manifest's folder; other keys are kept as they are.
    """
    manifest = Path(manifest)
    records = []
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{manifest}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            raise ValueError(f'{manifest}:{number}: expected an object with a "path" string, got {line.strip()[:80]!r}')
        records.append({**record, "path": str(manifest.parent / record["path"])})
    if not records:
        raise ValueError(f"manifest {manifest} lists no audio files")
    return records


def check_headers(paths: list[Path]) -> tuple[list[AudioEntry], SkippedFiles]:
    """The files whose header training can use (`checked_info`), and the others with their reasons."""
    entries, skipped = [], SkippedFiles()
    for path in paths:
        try:
            entries.append(AudioEntry(path=path, duration=checked_info(path).duration))
        except BadAudio as error:
            skipped.add(path, error.reason, error.detail)
    return entries, skipped


def probe_audio(paths: list[Path]) -> list[AudioEntry]:
    """Read every file's header; the files training cannot use are dropped and counted by reason in one warning.

    Raises ValueError when none is usable.
    """
    entries, skipped = check_headers(paths)
    if not entries:
        raise ValueError(f"none of the {len(paths)} audio files could be read: {skipped.summary()}")
    if skipped:
        warnings.warn(f"skipping {len(skipped)} of {len(paths)} audio files that could not be read: "
                      + skipped.summary(shown=10), stacklevel=2)
    return entries


class SegmentDataset(torch.utils.data.Dataset):
    """Item `index` -> segment float32 [C, segment_samples], a random crop of a random file.

    Files are picked in proportion to their duration; shorter files are zero-padded at the end.
    A file whose segment fails `read_checked` is skipped from then on (`failed`, `skipped`) and the draw is
    made again among the other files; a warning sums the failures up each time their count reaches a power of two.
    Raises ValueError when every file has failed.
    """

    def __init__(self, entries: list[AudioEntry], sample_rate: int, channels: int, segment_samples: int,
                 seed: int = 0) -> None:
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


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Indices of this rank's batch for each step in [start_step, total_steps).

    Step s, rank r, item b -> index (s * world_size + r) * batch_size + b: every rank reads different
    segments and the stream depends only on the step.
    """

    def __init__(self, batch_size: int, start_step: int, total_steps: int, rank: int = 0, world_size: int = 1) -> None:
        self.batch_size = batch_size
        self.start_step = start_step
        self.total_steps = total_steps
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.total_steps):
            first = (step * self.world_size + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
