"""JSONL manifests of audio clips, and the audio files training can use.

A manifest is JSONL, one clip a line: {"path": ..., and any other keys, e.g. "description", "duration"}.
Paths are written relative to the manifest's folder (the pair can move together) and read back resolved
against it. `list_audio_paths` takes a folder (searched recursively) or a manifest; `probe_audio` keeps the
files whose header training can use and counts the others by reason (`infra.audio.BadAudio`).

    write_manifest([{"path": "/data/a.wav", "description": "slow piano"}], "data/train.jsonl")
    records = read_manifest("data/train.jsonl")
    entries = probe_audio(list_audio_paths("data/train.jsonl"))
"""
from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import AUDIO_EXTENSIONS, BadAudio, checked_info, find_audio_files


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


MELODY_KEY = "melody_path"  # a row's melody stem (`musicgen-make-data --write-melody`), a path as "path" is


def read_manifest(manifest: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL manifest, one object a line with at least a "path" string.

    Relative paths ("path", and a melody stem's MELODY_KEY) are made relative to the manifest's folder; other keys are
    kept as they are.
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
        if MELODY_KEY in record and not isinstance(record[MELODY_KEY], str):
            raise ValueError(f'{manifest}:{number}: "{MELODY_KEY}" must be a path string, got {record[MELODY_KEY]!r}')
        records.append({**record, **{key: str(manifest.parent / record[key])
                                     for key in ("path", MELODY_KEY) if key in record}})
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


def write_manifest(records: list[dict[str, Any]], path: str | Path) -> None:
    """Write records as a manifest, their paths made relative to its folder (the pair can move together)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    lines = [json.dumps({**record, "path": os.path.relpath(record["path"], folder)}) for record in records]
    path.write_text("".join(line + "\n" for line in lines))
