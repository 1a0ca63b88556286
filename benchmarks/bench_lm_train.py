"""Training speed of an LM config on this machine: scored tokens per second and seconds per step.

    python benchmarks/bench_lm_train.py --config configs/lm/small.yaml --steps 12

Everything is random and built here (no data or weights needed): a codec of the config's K, cardinality and
50 frames/s, a T5 encoder of the config's condition width, and a token cache of 10 s clips. The first
`--warmup` steps are left out of the median. One process with torch's default threads; prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from codec import Codec, CodecConfig
from infra.config import load_config
from infra.distributed import DistributedEnv
from infra.train_log import read_jsonl
from musicgen.train import train
from musicgen.train.config import LMTrainConfig
from musicgen.train.text_encoder import build_text_encoder
from musicgen.train.token_cache import write_token_cache

INSTRUMENTS = ["piano", "strings", "guitar", "flute", "organ", "brass", "bass", "synth lead"]


def captions(count: int) -> list[str]:
    return [f"an upbeat {INSTRUMENTS[i % 8]} tune at {60 + 10 * (i % 13)} BPM in {'ABCDEFG'[i % 7]} "
            f"{'major' if i % 2 else 'minor'}{' with drums' if i % 3 else ''}" for i in range(count)]


def build_inputs(config: LMTrainConfig, folder: Path, clips: int, clip_seconds: float) -> list[str]:
    """Codec, text encoder and token cache for `config`; returns the overrides that point the config at them."""
    lm = config.model.lm
    Codec(CodecConfig(sample_rate=16000, dimension=16, n_filters=4, ratios=[8, 5, 8], lstm_layers=0,
                      num_codebooks=lm.num_codebooks, cardinality=lm.cardinality,
                      kmeans_iters=0)).save_pretrained(folder / "codec")
    texts = captions(clips)
    build_text_encoder(texts, folder / "text_encoder", vocab_size=256, d_model=lm.condition_dim, layers=2, heads=4)
    frames = round(clip_seconds * 50)
    generator = torch.Generator().manual_seed(0)
    write_token_cache(folder / "tokens" / "train",
                      [(torch.randint(0, lm.cardinality, (lm.num_codebooks, frames), generator=generator),
                        {"description": text})
                       for text in texts], lm.cardinality, frame_rate=50.0)
    return [f"codec={folder / 'codec'}", f"text_encoder={folder / 'text_encoder'}", f"data.cache_dir={folder / 'tokens'}",
            f"run_dir={folder / 'run'}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/lm/small.yaml")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("overrides", nargs="*", help="extra config overrides, e.g. data.micro_batch_size=4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        config = load_config(LMTrainConfig, args.config, args.overrides)
        overrides = build_inputs(config, folder, args.clips, config.data.segment_seconds)
        config = load_config(LMTrainConfig, args.config, [*args.overrides, *overrides, f"steps={args.steps}",
                                                        f"checkpoint_every={args.steps}", "eval_every=0"])
        started = time.perf_counter()
        train(config, DistributedEnv(rank=0, local_rank=0, world_size=1, device=torch.device("cpu")))
        wall = time.perf_counter() - started
        log = read_jsonl(folder / "run" / "log.jsonl")[args.warmup:]
    print(json.dumps({
        "config": args.config, "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0],
        "tokens_per_step": log[0]["tokens"],
        "tokens_per_second": statistics.median(record["tokens_per_second"] for record in log),
        "seconds_per_step": statistics.median(record["step_time"] for record in log),
        "wall_seconds": wall}))


if __name__ == "__main__":
    main()
