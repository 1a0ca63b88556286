"""Training data for the codec: random fixed-length segments from a folder or a JSONL manifest.

Segment `index` is drawn by its own generator seeded with (seed, index), so the batch of a step is a
pure function of the step: a resumed run reads exactly the segments the interrupted one would have.
Files that cannot be read are skipped, counted and named in a warning; training goes on.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import AUDIO_EXTENSIONS, audio_info, find_audio_files, read_audio

MAX_DRAWS = 16


@dataclass(frozen=True)
class AudioEntry:
    path: Path
    duration: float


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


def probe_audio(paths: list[Path]) -> list[AudioEntry]:
    """Read every file's header; unreadable or empty files are dropped and named in one warning.

    Raises ValueError when none is readable.
    """
    entries, failures = [], []
    for path in paths:
        try:
            info = audio_info(path)
        except (RuntimeError, OSError) as error:
            failures.append(f"{path} ({error})")
            continue
        if info.frames == 0:
            failures.append(f"{path} (no samples)")
            continue
        entries.append(AudioEntry(path=path, duration=info.duration))
    if not entries:
        raise ValueError(f"none of the {len(paths)} audio files could be read: " + "; ".join(failures[:5]))
    if failures:
        warnings.warn(f"skipping {len(failures)} of {len(paths)} audio files that could not be read: "
                      + "; ".join(failures), stacklevel=2)
    return entries


class SegmentDataset(torch.utils.data.Dataset):
    """Item `index` -> segment float32 [C, segment_samples], a random crop of a random file.

    Files are picked in proportion to their duration; shorter files are zero-padded at the end.
    A file that fails to decode here is skipped (a warning names it) and another one is drawn.
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

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        segment_seconds = self.segment_samples / self.sample_rate
        for _ in range(MAX_DRAWS):
            entry = self.entries[rng.choice(len(self.entries), p=self.probabilities)]
            start = rng.uniform(0.0, max(0.0, entry.duration - segment_seconds))
            if entry.path in self.failed:
                continue
            try:
                wav = read_audio(entry.path, self.sample_rate, self.channels, start=start, duration=segment_seconds)
            except (RuntimeError, OSError, ValueError) as error:
                self.failed[entry.path] = str(error)
                warnings.warn(f"skipping audio file that failed to decode: {entry.path} ({error}); "
                              f"{len(self.failed)} failed so far", stacklevel=2)
                continue
            return _fit_length(wav, self.segment_samples)
        raise RuntimeError(f"{MAX_DRAWS} draws in a row hit unreadable files; failed: {sorted(map(str, self.failed))}")


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
