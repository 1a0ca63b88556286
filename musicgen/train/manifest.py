"""Manifests of captioned audio for LM training.

A manifest is JSONL, one clip a line: {"path": ..., "description": ..., "duration": ...}; extra
keys are kept as metadata (`infra.manifest` reads and writes the format). `musicgen-manifest FOLDER`
writes one from a folder where each audio file has a sidecar caption: `song.wav` + `song.txt`,
or `song.json` holding a "description"
(its other keys become metadata). With `--valid-fraction` a seeded share of the clips goes to a
second, held-out manifest for the validation loss.

    musicgen-manifest data/songs --out data/train.jsonl --valid-fraction 0.05 --valid-out data/valid.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from infra.audio import BadAudio, checked_info, find_audio_files
from infra.manifest import SkippedFiles, write_manifest


def sidecar_caption(audio_path: Path) -> dict[str, Any] | None:
    """The caption record of an audio file from `name.txt` or `name.json`, or None when it has neither.

    Raises ValueError for a .json sidecar that is not an object with a "description" string.
    """
    text_path = audio_path.with_suffix(".txt")
    if text_path.is_file():
        return {"description": text_path.read_text().strip()}
    json_path = audio_path.with_suffix(".json")
    if not json_path.is_file():
        return None
    try:
        sidecar = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path}: not valid JSON ({error.msg})") from None
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("description"), str):
        raise ValueError(f'{json_path}: expected an object with a "description" string')
    return {key: value for key, value in sidecar.items() if key not in ("path", "duration")}


def manifest_records(folder: str | Path) -> list[dict[str, Any]]:
    """A record for every captioned, readable audio file under `folder` (absolute paths), sorted by path.

    Files without a caption and files whose header training cannot use (`infra.audio.checked_info`: unreadable,
    no samples, sample rate out of range) are left out and counted by reason in one warning; samples are checked
    when the token cache reads them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    records, left_out = [], SkippedFiles()
    for audio_path in find_audio_files(folder):
        name = audio_path.relative_to(folder)
        try:
            caption = sidecar_caption(audio_path)
        except ValueError as error:
            left_out.add(name, "bad caption", str(error))
            continue
        if caption is None:
            left_out.add(name, "no .txt or .json caption")
            continue
        try:
            duration = checked_info(audio_path).duration
        except BadAudio as error:
            left_out.add(name, error.reason, error.detail)
            continue
        records.append({"path": str(audio_path.resolve()), **caption, "duration": duration})
    if left_out:
        warnings.warn(f"{len(left_out)} audio files were left out of the manifest: {left_out.summary(shown=10)}",
                      stacklevel=2)
    if not records:
        raise ValueError(f"no captioned, readable audio files under {folder}")
    return records


def split_records(records: list[dict[str, Any]], valid_fraction: float,
                  seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, valid): round(len * valid_fraction) records drawn by a seeded permutation go to valid; order is kept."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    valid_count = round(len(records) * valid_fraction)
    chosen = set(np.random.default_rng(seed).permutation(len(records))[:valid_count].tolist())
    train = [record for index, record in enumerate(records) if index not in chosen]
    valid = [record for index, record in enumerate(records) if index in chosen]
    return train, valid


def build_manifest(folder: str | Path, out: str | Path, valid_fraction: float = 0.0,
                   valid_out: str | Path | None = None,
                   *, seed: int = 0) -> tuple[int, int]:
    """Write the manifest of `folder` to `out` (and its held-out share to `valid_out`); returns (train, valid) counts.

    Paths in each manifest are relative to that manifest's folder.
    """
    if valid_fraction > 0 and valid_out is None:
        raise ValueError("valid_fraction > 0 needs valid_out, the path of the held-out manifest")
    train, valid = split_records(manifest_records(folder), valid_fraction, seed)
    if not train:
        raise ValueError(f"valid_fraction={valid_fraction} leaves no clips for training out of {len(valid)}")
    write_manifest(train, out)
    if valid_out is not None:
        write_manifest(valid, valid_out)
    return len(train), len(valid)


def main(argv: list[str] | None = None) -> None:
    """`musicgen-manifest FOLDER --out manifest.jsonl [--valid-fraction F --valid-out valid.jsonl]`."""
    parser = argparse.ArgumentParser(prog="musicgen-manifest",
                                     description="Write a JSONL manifest from a folder of audio files with .txt/.json captions.")
    parser.add_argument("folder")
    parser.add_argument("--out", default="manifest.jsonl", help="the training manifest")
    parser.add_argument("--valid-fraction", type=float, default=0.0, help="share of clips held out for validation")
    parser.add_argument("--valid-out", default=None, help="the held-out manifest (needed with --valid-fraction)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    args = parser.parse_args(argv)
    try:
        train, valid = build_manifest(args.folder, args.out, args.valid_fraction, args.valid_out, seed=args.seed)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"musicgen-manifest: {error}")
    print(json.dumps({"manifest": args.out, "clips": train, "valid_manifest": args.valid_out, "valid_clips": valid}))
