"""The token cache: audio turned into codec tokens once, read back as windows for training.

    build_token_cache(codec, read_manifest("train.jsonl"), "runs/lm/tokens/train")   # every rank, then a barrier
    cache = TokenCache("runs/lm/tokens/train")
    codes = cache.window(clip, start, frames, special_token)                           # int64 [K, frames]

On disk (one folder):
    meta.json              K, cardinality, frame rate, shard size and count, and a fingerprint of codec + manifest
    shard_00000.json       {"clips": [{offset, frames, description, ...metadata}], "skipped": ["path (why)", ...],
                            "skip_reasons": {reason: count}}
    shard_00000.npy        codes [K, frames of all the shard's clips], int16 (int32 above 32768 codes), memory-mapped
Each shard is written atomically, its index before its codes, so a build that was stopped resumes
at the shards whose codes are missing. Under torchrun each rank encodes every world_size-th shard.
A clip whose audio `infra.audio.read_checked` refuses (unreadable, decoding failed, NaN samples, ...) or that is
shorter than one codec frame is skipped, counted by reason and named; the other clips keep their captions. The
cache remembers the skipped files; a cache of no clip at all is an error when it is opened.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from codec import Codec
from codec.stereo import InterleavedStereoCodec
from infra.audio import BadAudio, read_checked
from infra.files import atomic_write
from infra.manifest import SkippedFiles

META_NAME = "meta.json"


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def build_token_cache(codec: Codec | InterleavedStereoCodec, entries: list[dict[str, Any]], out_dir: str | Path,
                      shard_size: int = 256, *, progress: bool = True, rank: int = 0, world_size: int = 1) -> None:
    """Encode the manifest `entries` ({"path", "description", ...}) with the frozen codec into `out_dir` (a stereo
    codec reads each file as two channels: codec/stereo.py).

    This process writes shards rank, rank + world_size, ...; shards already on disk are kept (resume).
    Open the result with `TokenCache(out_dir)` once every rank is done.
    """
    if not entries:
        raise ValueError("the manifest lists no clips to tokenize")
    shard_count = (len(entries) + shard_size - 1) // shard_size
    meta = cache_meta(codec.num_codebooks, codec.cardinality, codec.frame_rate, shard_size, shard_count=shard_count,
                      source=fingerprint(codec, entries))
    prepare_folder(out_dir, meta)
    out_dir = Path(out_dir)
    todo = [shard for shard in range(rank, shard_count, world_size) if not (out_dir / f"{shard_name(shard)}.npy").exists()]
    bar = tqdm(total=sum(len(entries[shard * shard_size:(shard + 1) * shard_size]) for shard in todo),
               desc="tokenizing", unit="clip", disable=not progress)
    for shard in todo:
        clips, skipped = encode_clips(codec, entries[shard * shard_size:(shard + 1) * shard_size], bar)
        write_shard(out_dir, shard, clips, skipped, cardinality=codec.cardinality)
    bar.close()


def write_token_cache(out_dir: str | Path, clips: Sequence[tuple[torch.Tensor, dict[str, Any]]], cardinality: int,
                      frame_rate: float, *, shard_size: int = 256) -> TokenCache:
    """A cache of codes already at hand: clips of (codes [K, T] int, entry {"description", ...})."""
    if not clips:
        raise ValueError("write_token_cache needs at least one clip")
    num_codebooks = clips[0][0].shape[0]
    shard_count = (len(clips) + shard_size - 1) // shard_size
    digest = hashlib.sha256()
    for codes, entry in clips:
        digest.update(codes.numpy().astype(np.int64).tobytes() + json.dumps(entry, sort_keys=True).encode())
    prepare_folder(out_dir, cache_meta(num_codebooks, cardinality, frame_rate, shard_size, shard_count=shard_count,
                                       source=digest.hexdigest()))
    for shard in range(shard_count):
        write_shard(Path(out_dir), shard, list(clips[shard * shard_size:(shard + 1) * shard_size]), SkippedFiles(),
                    cardinality=cardinality)
    return TokenCache(out_dir)


def cache_meta(num_codebooks: int, cardinality: int, frame_rate: float, shard_size: int, *, shard_count: int,
               source: str) -> dict[str, Any]:
    return {"num_codebooks": num_codebooks, "cardinality": cardinality, "frame_rate": frame_rate,
            "shard_size": shard_size, "shards": shard_count, "source": source}


def fingerprint(codec: Codec | InterleavedStereoCodec, entries: list[dict[str, Any]]) -> str:
    """A digest of the codec's weights and config and of the manifest entries: what a cache was built from."""
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode())
    digest.update(json.dumps(codec.num_codebooks).encode())
    for name, tensor in sorted(codec.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def prepare_folder(out_dir: str | Path, meta: dict[str, Any]) -> None:
    """Create the cache folder with its meta.json, or check that the one there describes the same build."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / META_NAME
    if path.exists():
        existing = json.loads(path.read_text())
        if existing != meta:
            differing = sorted(key for key in meta if existing.get(key) != meta[key])
            raise ValueError(f"{out_dir} holds a token cache of another build (differs in {', '.join(differing)}: "
                             f"another codec, manifest or shard size); delete it or use a new folder")
        return
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps(meta, indent=1)))


@torch.inference_mode()
def encode_clips(codec: Codec | InterleavedStereoCodec, entries: list[dict[str, Any]],
                 bar: tqdm) -> tuple[list[tuple[torch.Tensor, dict[str, Any]]], SkippedFiles]:
    """(codes [K, T], entry) for each usable entry, in order, and the skipped ones with their reasons."""
    device = next(codec.parameters()).device
    clips, skipped = [], SkippedFiles()
    for entry in entries:
        bar.update(1)
        try:
            wav = read_checked(entry["path"], codec.sample_rate, codec.channels)
        except BadAudio as error:
            skipped.add(entry["path"], error.reason, error.detail)
            continue
        if wav.shape[-1] < codec.hop_length:
            skipped.add(entry["path"], "shorter than one codec frame")
            continue
        clips.append((codec.encode(wav[None].to(device))[0].cpu(), entry))
    return clips, skipped


def write_shard(out_dir: Path, shard: int, clips: list[tuple[torch.Tensor, dict[str, Any]]], skipped: SkippedFiles,
                *, cardinality: int) -> None:
    """Write one shard atomically: its index (.json) first, then its codes (.npy), whose presence marks it done."""
    dtype = np.int16 if cardinality <= 2**15 else np.int32
    index, offset = [], 0
    for codes, entry in clips:
        index.append({**entry, "offset": offset, "frames": codes.shape[-1]})
        offset += codes.shape[-1]
    num_codebooks = clips[0][0].shape[0] if clips else 0
    all_codes = (np.concatenate([codes.numpy().astype(dtype) for codes, _ in clips], axis=1) if clips
                 else np.zeros((num_codebooks, 0), dtype))
    index_json = {"clips": index, "skipped": skipped.files, "skip_reasons": dict(skipped.reasons)}
    atomic_write(out_dir / f"{shard_name(shard)}.json", lambda temporary: temporary.write_text(json.dumps(index_json)))
    atomic_write(out_dir / f"{shard_name(shard)}.npy", lambda temporary: np.save(temporary, all_codes))


class TokenCache:
    """Read side of a complete token cache: clips of codes [K, frames] from memory-mapped shards."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        meta_path = folder / META_NAME
        if not meta_path.is_file():
            raise FileNotFoundError(f"no token cache in {folder} (missing {META_NAME})")
        self.folder = folder
        self.meta = json.loads(meta_path.read_text())
        self.num_codebooks: int = self.meta["num_codebooks"]
        self.cardinality: int = self.meta["cardinality"]
        self.frame_rate: float = self.meta["frame_rate"]
        missing = [shard for shard in range(self.meta["shards"]) if not (folder / f"{shard_name(shard)}.npy").exists()]
        if missing:
            raise ValueError(f"the token cache in {folder} is incomplete: {len(missing)} of {self.meta['shards']} shards "
                             f"are missing (first {shard_name(missing[0])}); run the build again to finish it")
        self.shards: list[np.ndarray] = []
        self.clips: list[dict[str, Any]] = []
        self.skipped = SkippedFiles()
        for shard in range(self.meta["shards"]):
            self.shards.append(np.load(folder / f"{shard_name(shard)}.npy", mmap_mode="r"))
            index = json.loads((folder / f"{shard_name(shard)}.json").read_text())
            self.clips += [{**clip, "shard": shard} for clip in index["clips"]]
            self.skipped.files += index["skipped"]
            # a shard of an earlier build names its skipped files without counting their reasons
            self.skipped.reasons.update(index.get("skip_reasons", {"unreadable": len(index["skipped"])}))
        if not self.clips:
            raise ValueError(f"the token cache in {folder} holds no clips; none of its {len(self.skipped)} audio files "
                             f"could be used: {self.skipped.summary()}")

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def frames(self) -> np.ndarray:
        """Frames of every clip, int64 [clips]."""
        return np.array([clip["frames"] for clip in self.clips], dtype=np.int64)

    def description(self, index: int) -> str:
        return self.clips[index].get("description", "")

    def codes(self, index: int, start: int = 0, length: int | None = None) -> torch.Tensor:
        """Codes of clip `index` from frame `start`: int64 [K, length] (to the clip's end by default)."""
        clip = self.clips[index]
        length = clip["frames"] - start if length is None else length
        if start < 0 or length < 0 or start + length > clip["frames"]:
            raise ValueError(f"frames [{start}, {start + length}) lie outside clip {index} of {clip['frames']} frames")
        window = self.shards[clip["shard"]][:, clip["offset"] + start:clip["offset"] + start + length]
        return torch.from_numpy(window.astype(np.int64))

    def window(self, index: int, start: int, frames: int, special_token: int) -> torch.Tensor:
        """`frames` frames of clip `index` from `start`: int64 [K, frames]; past the clip's end, `special_token` (padding)."""
        available = max(0, min(frames, self.clips[index]["frames"] - start))
        codes = torch.full((self.num_codebooks, frames), special_token, dtype=torch.long)
        codes[:, :available] = self.codes(index, start, available)
        return codes


def warn_skipped(cache: TokenCache) -> None:
    """One warning counting the audio files the build skipped by reason and naming the first (nothing when none was)."""
    if cache.skipped:
        warnings.warn(f"the token cache in {cache.folder} skipped {len(cache.skipped)} audio files: "
                      + cache.skipped.summary(shown=10), stacklevel=2)
