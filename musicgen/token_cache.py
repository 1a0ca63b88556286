"""The token cache: audio turned into codec tokens once, read back as random crops for training.

On disk (one folder):
    meta.json              K, cardinality, frame rate, shard size
    shard_00000.npy        int16 codes [K, frames of all clips of the shard], memory-mapped when read
    shard_00000.jsonl      one line per clip of the shard: offset, frames, description, metadata
Each shard is written atomically (temporary file, then rename) after its index part, so an
interrupted build resumes at the first missing shard. Unreadable audio is skipped, counted and named.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from codec import Codec
from codec.audio import read_audio

META_NAME = "meta.json"


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def build_token_cache(codec: Codec, entries: list[dict[str, Any]], out_dir: str | Path, shard_size: int = 256,
                      progress: bool = True) -> dict[str, Any]:
    """Encode every manifest entry's audio with the frozen codec into `out_dir`; returns a summary.

    Shards already on disk are kept (resume). The summary counts clips, frames and skipped files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"num_codebooks": codec.num_codebooks, "cardinality": codec.cardinality,
            "frame_rate": codec.frame_rate, "sample_rate": codec.sample_rate, "shard_size": shard_size}
    _check_or_write_meta(out_dir / META_NAME, meta)
    skipped: list[str] = []
    shard_count = (len(entries) + shard_size - 1) // shard_size
    bar = tqdm(total=len(entries), desc="tokenizing", unit="clip", disable=not progress)
    for shard in range(shard_count):
        shard_entries = entries[shard * shard_size:(shard + 1) * shard_size]
        if not (out_dir / f"{shard_name(shard)}.npy").exists():
            skipped += _write_shard(codec, shard_entries, out_dir, shard)
        bar.update(len(shard_entries))
    bar.close()
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable audio files: {', '.join(skipped[:10])}"
                      + (" ..." if len(skipped) > 10 else ""))
    cache = TokenCache(out_dir)
    return {"clips": len(cache), "frames": cache.total_frames, "skipped": len(skipped), "skipped_files": skipped}


def _check_or_write_meta(path: Path, meta: dict[str, Any]) -> None:
    if path.exists():
        existing = json.loads(path.read_text())
        if existing != meta:
            raise ValueError(f"{path.parent} holds a token cache of another codec or shard size: {existing} != {meta}; "
                             "use a new folder")
        return
    path.write_text(json.dumps(meta, indent=1))


@torch.inference_mode()
def _write_shard(codec: Codec, entries: list[dict[str, Any]], out_dir: Path, shard: int) -> list[str]:
    """Encode one shard's clips, write index part then codes atomically; returns the skipped paths."""
    device = next(codec.parameters()).device
    codes_of_clips, index_lines, skipped = [], [], []
    offset = 0
    for entry in entries:
        try:
            wav = read_audio(entry["path"], codec.sample_rate, codec.channels)
        except Exception as error:  # noqa: BLE001 - any decoding failure skips the file, never the build
            skipped.append(f"{entry['path']} ({type(error).__name__}: {error})")
            continue
        if wav.shape[-1] < codec.hop_length:
            skipped.append(f"{entry['path']} (shorter than one codec frame)")
            continue
        codes = codec.encode(wav[None].to(device))[0].cpu()
        codes_of_clips.append(codes.numpy().astype(np.int16))
        frames = codes.shape[-1]
        index_lines.append(json.dumps({**entry, "offset": offset, "frames": frames}))
        offset += frames
    num_codebooks = codec.num_codebooks
    all_codes = np.concatenate(codes_of_clips, axis=1) if codes_of_clips else np.zeros((num_codebooks, 0), np.int16)
    _atomic_write(out_dir / f"{shard_name(shard)}.jsonl", lambda f: f.write(("\n".join(index_lines) + "\n").encode()))
    _atomic_write(out_dir / f"{shard_name(shard)}.npy", lambda f: np.save(f, all_codes))
    return skipped


def _atomic_write(path: Path, write) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@dataclass
class Clip:
    shard: int
    offset: int
    frames: int
    description: str
    metadata: dict[str, Any]


class TokenCache:
    """Read side of a token cache: clips of codes `[K, frames]` from memory-mapped shards."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        meta_path = folder / META_NAME
        if not meta_path.is_file():
            raise FileNotFoundError(f"no token cache in {folder} (missing {META_NAME})")
        self.meta = json.loads(meta_path.read_text())
        self.num_codebooks = self.meta["num_codebooks"]
        self.cardinality = self.meta["cardinality"]
        self.shards: list[np.ndarray] = []
        self.clips: list[Clip] = []
        shard = 0
        while (folder / f"{shard_name(shard)}.npy").exists():
            self.shards.append(np.load(folder / f"{shard_name(shard)}.npy", mmap_mode="r"))
            for line in (folder / f"{shard_name(shard)}.jsonl").read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    offset, frames = entry.pop("offset"), entry.pop("frames")
                    self.clips.append(Clip(shard, offset, frames, entry.pop("description", ""), entry))
            shard += 1
        if not self.clips:
            raise ValueError(f"the token cache in {folder} holds no clips")

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def total_frames(self) -> int:
        return sum(clip.frames for clip in self.clips)

    def codes(self, index: int, start: int = 0, length: int | None = None) -> torch.Tensor:
        """Codes of clip `index` from frame `start`: int64 [K, length]."""
        clip = self.clips[index]
        length = clip.frames - start if length is None else length
        window = self.shards[clip.shard][:, clip.offset + start:clip.offset + start + length]
        return torch.from_numpy(window.astype(np.int64))

    def random_crop(self, index: int, segment_frames: int, special_token: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A random window of `segment_frames` of clip `index`: (codes [K, segment] int64, valid [segment] bool).

        A clip shorter than the segment is padded with `special_token`, its padding marked invalid.
        """
        frames = self.clips[index].frames
        start = int(torch.randint(0, max(frames - segment_frames, 0) + 1, (1,), generator=generator))
        window = self.codes(index, start, min(segment_frames, frames))
        valid = torch.zeros(segment_frames, dtype=torch.bool)
        valid[:window.shape[-1]] = True
        codes = torch.full((self.num_codebooks, segment_frames), special_token, dtype=torch.long)
        codes[:, :window.shape[-1]] = window
        return codes, valid
