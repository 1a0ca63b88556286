"""Streaming latency: how soon `MusicGen.generate_stream` yields its first chunk, with the default model.

Loads the model (checkpoints/default unless --model), then times `--calls` streams of one prompt each (seeded, the
model's sampling defaults) from the call to the first chunk, and to the last; the first call also measures the
codec decoder's reach (once per model, musicgen/streaming.py) and packs the LM's weights, and is reported apart.
Also checks that the chunks join into `generate`'s audio (largest difference). One JSON line.

--clock wall times the calls as a user waits for them; --clock cpu counts this process's CPU seconds instead, which
with --threads 1 is the wall time of an idle machine, measured on a machine busy with other jobs.

    python benchmarks/bench_stream.py --threads 2                          # idle machine
    python benchmarks/bench_stream.py --threads 1 --clock cpu --calls 3    # busy machine
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from musicgen import MusicGen

PROMPT = "an upbeat piano tune at 120 BPM in A major with drums"


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_stream(model: MusicGen, *, duration: float, chunk: float, seed: int,
                clock: Callable[[], float]) -> tuple[float, float, torch.Tensor]:
    """Seconds to the first chunk and to the last, and the joined audio [1, C, N]."""
    start = clock()
    chunks, first = [], None
    for piece in model.generate_stream([PROMPT], duration, chunk, seed=seed):
        first = clock() - start if first is None else first
        chunks.append(piece)
    return first, clock() - start, torch.cat(chunks, dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the embedded model)")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--chunk", type=float, default=0.5, help="chunk_seconds")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    model = MusicGen.from_pretrained(args.model, device="cpu")
    cold_first, cold_total, joined = time_stream(model, duration=args.duration, chunk=args.chunk, seed=0, clock=clock)
    difference = (joined - model.generate([PROMPT], args.duration, seed=0)).abs().max().item()
    warm = [time_stream(model, duration=args.duration, chunk=args.chunk, seed=seed, clock=clock)[:2]
            for seed in range(1, args.calls + 1)]
    print(json.dumps({
        "duration_s": args.duration, "chunk_s": args.chunk, "threads": args.threads, "clock": args.clock,
        "reach": vars(model.decoder_reach),
        "first_call": {"first_chunk_s": round(cold_first, 3), "total_s": round(cold_total, 3)},
        "first_chunk_s_median": round(statistics.median(first for first, _ in warm), 3),
        "first_chunk_s_max": round(max(first for first, _ in warm), 3),
        "total_s_median": round(statistics.median(total for _, total in warm), 3),
        "max_difference_to_generate": difference,
    }))


if __name__ == "__main__":
    main()
