"""Captioned clips, deterministic by (seed, split, index), written as WAV files plus manifest.jsonl."""
from __future__ import annotations

import contextlib
import copy
import json
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile
from tqdm import tqdm

from .captions import describe
from .compose import PieceSpec, compose
from .render import Renderer
from .split import SPLITS, caption_rng, clip_rng, sample_spec


@dataclass
class Piece:
    """One clip before rendering: what it holds, its caption and its MIDI."""

    index: int
    spec: PieceSpec
    description: str
    midi: pretty_midi.PrettyMIDI


def make_piece(seed: int, index: int, split: str, duration: float) -> Piece:
    """Clip `index` of `split` under `seed`: the same arguments always give the same piece."""
    rng = clip_rng(seed, index, split)
    spec = sample_spec(rng, split)
    return Piece(index, spec, describe(spec, caption_rng(seed, index, split)), compose(spec, duration, rng))


def heldout_prompts(count: int, seed: int = 0) -> list[tuple[str, PieceSpec]]:
    """(caption, spec) for evaluation: held-out combinations, captions that state instrument,
    BPM, key and mode (and drums when present). Prompt i has the spec of `--split heldout` clip i."""
    prompts = []
    for index in range(count):
        spec = sample_spec(clip_rng(seed, index, "heldout"), "heldout")
        prompts.append((describe(spec, caption_rng(seed, index, "heldout"), complete=True), spec))
    return prompts


def manifest_row(piece: Piece, path: str, duration: float, split: str) -> dict:
    spec = piece.spec
    return {"path": path, "description": piece.description, "duration": duration, "instrument": spec.instrument,
            "program": spec.program, "bpm": spec.bpm, "key": spec.key, "mode": spec.mode, "drums": spec.drums,
            "density": spec.density, "split": split, "index": piece.index}


_renderer: Renderer | None = None


def _render(seed: int, index: int, split: str, duration: float, sample_rate: int) -> tuple[Piece, np.ndarray]:
    """Compose and render one clip with this process's renderer (created on first use)."""
    global _renderer
    if _renderer is None or _renderer.sample_rate != sample_rate:
        _renderer = Renderer(sample_rate)
    piece = make_piece(seed, index, split, duration)
    return piece, _renderer.render(piece.midi, duration)


@dataclass(frozen=True)
class ClipJob:
    """What `_write_clip` writes: clip `index` of `split` under `seed` into folder `out`."""

    out: Path
    seed: int
    split: str
    duration: float
    sample_rate: int
    index: int
    write_midi: bool = False
    write_melody: bool = False


def _write_clip(job: ClipJob) -> dict:
    """Render one clip and write its WAV (and MIDI, and its melody stem); returns its manifest row."""
    piece, audio = _render(job.seed, job.index, job.split, job.duration, job.sample_rate)
    name = f"{job.split}_{job.index:06d}"
    soundfile.write(job.out / f"{name}.wav", audio, job.sample_rate, subtype="PCM_16")
    if job.write_midi:
        piece.midi.write(str(job.out / f"{name}.mid"))
    row = manifest_row(piece, f"{name}.wav", job.duration, job.split)
    if job.write_melody:
        row["melody_path"] = _write_melody_stem(piece, job, name) if piece.spec.drums else row["path"]
    return row


def _write_melody_stem(piece: Piece, job: ClipJob, name: str) -> str:
    """Write the clip without its drums (the stem a melody condition is computed from, as audiocraft takes the
    drum-less stem of a song) as `{name}.melody.wav`; returns that file's name."""
    pitched = copy.deepcopy(piece.midi)
    pitched.instruments = [instrument for instrument in pitched.instruments if not instrument.is_drum]
    path = f"{name}.melody.wav"
    soundfile.write(job.out / path, _renderer.render(pitched, job.duration), job.sample_rate, subtype="PCM_16")
    return path


def _clip_audio(job: tuple[int, str, float, int, int]) -> tuple[PieceSpec, np.ndarray]:
    piece, audio = _render(*job)
    return piece.spec, audio


def _parallel_map(function: Callable, jobs: list, workers: int, description: str) -> Iterator:
    """function over jobs in order, on `workers` processes, with a progress bar."""
    if workers <= 0:
        raise ValueError(f"workers must be at least 1, got {workers}")
    with multiprocessing.Pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        results = pool.imap(function, jobs, chunksize=4) if pool else map(function, jobs)
        yield from tqdm(results, total=len(jobs), desc=description, unit="clip")


def check_request(count: int, split: str, duration: float) -> None:
    if count <= 0:
        raise ValueError(f"count must be a positive number of clips, got {count}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if duration <= 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration}")


def render_clips(count: int, seed: int = 0, split: str = "train", duration: float = 10.0, *, sample_rate: int = 16000,
                 workers: int = 1) -> list[tuple[PieceSpec, np.ndarray]]:
    """The specs and audio ([duration * sample_rate] float32) of clips 0..count-1, kept in memory."""
    check_request(count, split, duration)
    jobs = [(seed, index, split, duration, sample_rate) for index in range(count)]
    return list(_parallel_map(_clip_audio, jobs, workers, f"rendering {split}"))


def write_dataset(out: str | Path, count: int, seed: int = 0, split: str = "train", *, duration: float = 10.0,
                  sample_rate: int = 16000, workers: int = 1, write_midi: bool = False,
                  write_melody: bool = False) -> Path:
    """Write `count` mono PCM-16 WAVs and `manifest.jsonl` (paths relative to `out`); returns the manifest path.
    write_melody: also each clip's melody stem (its render without drums; the clip itself when it has none), named
    in the manifest row's `melody_path`."""
    check_request(count, split, duration)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [ClipJob(out, seed, split, duration, sample_rate, index, write_midi, write_melody) for index in range(count)]
    manifest = out / "manifest.jsonl"
    with open(manifest, "w") as file:
        file.writelines(json.dumps(row) + "\n" for row in _parallel_map(_write_clip, jobs, workers, f"rendering {split}"))
    return manifest
