"""Manifests of captioned audio for LM training.

A manifest is JSONL, one clip a line: {"path": ..., "description": ..., "duration": ...}; extra
keys are kept as metadata (read with `codec.data.read_manifest`). `musicgen-manifest FOLDER` writes
one from a folder where each audio file has a sidecar caption (`song.wav` + `song.txt`, or
`song.json` holding a "description").
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from codec.audio import find_audio_files


def caption_of(audio_path: Path) -> str | None:
    """The sidecar caption of an audio file: `name.txt`, or `name.json` with a "description"."""
    text_path = audio_path.with_suffix(".txt")
    if text_path.is_file():
        return text_path.read_text().strip()
    json_path = audio_path.with_suffix(".json")
    if json_path.is_file():
        sidecar = json.loads(json_path.read_text())
        if isinstance(sidecar, dict) and isinstance(sidecar.get("description"), str):
            return sidecar["description"]
    return None


def write_manifest(folder: str | Path, out: str | Path) -> int:
    """Write a manifest of every captioned audio file under `folder`; returns the clip count."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    lines, uncaptioned = [], []
    for audio_path in find_audio_files(folder):
        caption = caption_of(audio_path)
        if caption is None:
            uncaptioned.append(audio_path.name)
            continue
        lines.append(json.dumps({"path": str(audio_path.resolve()), "description": caption}))
    if uncaptioned:
        warnings.warn(f"{len(uncaptioned)} audio files have no .txt/.json caption and were left out, e.g. {uncaptioned[:3]}")
    if not lines:
        raise ValueError(f"no captioned audio files under {folder}")
    Path(out).write_text("\n".join(lines) + "\n")
    return len(lines)


def manifest_main(argv: list[str] | None = None) -> None:
    """`musicgen-manifest FOLDER --out manifest.jsonl`."""
    parser = argparse.ArgumentParser(description="Write a JSONL manifest from a folder of audio files with .txt/.json captions.")
    parser.add_argument("folder")
    parser.add_argument("--out", default="manifest.jsonl")
    args = parser.parse_args(argv)
    try:
        count = write_manifest(args.folder, args.out)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"musicgen-manifest: {error}")
    print(json.dumps({"manifest": args.out, "clips": count}))
