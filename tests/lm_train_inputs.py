"""Inputs built inside the LM-training tests: a tiny codec, a tiny T5 text encoder from scratch, token caches of
random codes (no audio needed), and configs for `musicgen-train`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from codec import Codec, CodecConfig
from infra.config import config_from_dict
from infra.distributed import DistributedEnv
from musicgen.train import train
from musicgen.train.config import LMTrainConfig
from musicgen.train.text_encoder import build_text_encoder
from musicgen.train.token_cache import write_token_cache

CAPTIONS = ["slow piano in C major", "fast drums at 140 BPM", "sad strings in D minor", "an upbeat guitar tune"]
NUM_CODEBOOKS, CARD, TEXT_WIDTH = 3, 16, 32
TRAIN = [sys.executable, "-m", "musicgen.train"]
ONE_PROCESS = DistributedEnv(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "musicgen.train"]


def make_sources(folder: Path, ratios: list[int] = (4, 2)) -> tuple[Path, Path]:
    """A random tiny codec (8 kHz, hop 8 by default: 1000 frames/s, K=3 codebooks of 16 codes) and a T5 encoder of
    width 32."""
    torch.manual_seed(0)
    codec = Codec(CodecConfig(sample_rate=8000, dimension=8, n_filters=2, ratios=list(ratios), lstm_layers=0,
                              num_codebooks=NUM_CODEBOOKS, cardinality=CARD, kmeans_iters=0))
    codec.save_pretrained(folder / "codec")
    build_text_encoder(CAPTIONS * 4, folder / "text_encoder", vocab_size=64, d_model=TEXT_WIDTH, layers=1, heads=2,
                       dropout=0.0)
    return folder / "codec", folder / "text_encoder"


def random_clips(frames: list[int], seed: int = 0) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    """One clip of random codes [K, frames] per entry of `frames`, captioned in turn with CAPTIONS."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, CARD, (NUM_CODEBOOKS, length), generator=generator),
             {"description": CAPTIONS[index % len(CAPTIONS)]}) for index, length in enumerate(frames)]


def write_caches(cache_dir: Path, train_frames: list[int], valid_frames: list[int] | None = None,
                 seed: int = 0) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    """Token caches of random clips in cache_dir/train (and cache_dir/valid); returns the training clips."""
    clips = random_clips(train_frames, seed)
    write_token_cache(cache_dir / "train", clips, CARD, frame_rate=1000.0, shard_size=3)
    if valid_frames:
        write_token_cache(cache_dir / "valid", random_clips(valid_frames, seed + 1), CARD, frame_rate=1000.0)
    return clips


def train_config(sources: tuple[Path, Path], run_dir: Path, cache_dir: Path, pattern: str = "delay", frames: int = 6,
                 *, frame_rate: float = 1000.0, **overrides: Any) -> dict[str, Any]:
    """A from-scratch config dict over the cached tokens, windows of `frames` frames of a codec of `frame_rate`
    frames/s; `overrides` replace top-level keys or sections' keys."""
    codec, text_encoder = sources
    config = {
        "codec": str(codec), "text_encoder": str(text_encoder), "run_dir": str(run_dir),
        "model": {"lm": {"num_codebooks": NUM_CODEBOOKS, "cardinality": CARD, "dim": 64, "num_heads": 4,
                         "num_layers": 2,
                         "ffn_dim": 128, "condition_dim": TEXT_WIDTH, "max_positions": 64},
                  "pattern": {"name": pattern}},
        "data": {"cache_dir": str(cache_dir), "segment_seconds": frames / frame_rate, "batch_size": 8,
                 "condition_dropout": 0.0, "word_dropout": 0.0},
        "optim": {"lr": 1e-2, "weight_decay": 0.0, "warmup_steps": 10, "min_lr_factor": 0.1},
        "steps": 100, "checkpoint_every": 100, "device": "cpu",
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    return config


def write_config(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def train_in_process(config: dict[str, Any]) -> Path:
    """`musicgen-train` on a config dict in this process (one process, on the CPU); returns the export folder."""
    return train(config_from_dict(LMTrainConfig, config), ONE_PROCESS)
