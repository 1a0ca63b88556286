"""The weight-streaming bound of one decode step, measured with the LM's own matrix shapes.

A decode step multiplies `rows` activations (2 per prompt under classifier-free guidance) by every weight
of the layers and heads once, so its time is at least the time to stream those weights from memory.
This streams exactly those matrices (random, the LM's shapes, more bytes than any cache holds) through
the matmul each side uses, at the decode step's row count:

    nn.Linear    F.linear, what transformers runs (query, key, value and the K heads as separate matrices)
    packed       oneDNN's matmul on its packed layout, what this project runs on the CPU (musicgen.fast_linear.PackedLinear,
                 query/key/value and the heads fused)
    int8         this project's Int8Linear (int8 bytes)
    int4         this project's Int4Linear (4-bit codes and a bfloat16 scale and zero point per INT4_GROUP_SIZE inputs)
    read         a sum over the same float32 bytes: the memory's read bandwidth, no matmul

Each way's time is its fastest pass of 15. The bound (steps/s) is the float32 weight bytes over the fastest float32
way's time; the int8 and int4 bounds are their bytes at that same rate.
Run alone: `python benchmarks/streaming_bound.py --shape small --threads 1`.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from musicgen.fast_linear import INT4_GROUP_SIZE, Int4Linear, Int8Linear, PackedLinear, can_pack

SHAPES = {  # decoder sizes: layers, width, ffn (transformers' MusicgenDecoderConfig names)
    "mid": dict(num_hidden_layers=8, hidden_size=512, ffn_dim=2048),
    "small": dict(num_hidden_layers=24, hidden_size=1024, ffn_dim=4096),
    "medium": dict(num_hidden_layers=48, hidden_size=1536, ffn_dim=6144),
}
NUM_CODEBOOKS, CARD = 4, 2048


def decode_matrices(num_hidden_layers: int, hidden_size: int, ffn_dim: int, fused: bool) -> list[tuple[int, int]]:
    """(out_features, in_features) of every matmul of one decode step, in order; fused: query/key/value and the heads as one."""
    dim = hidden_size
    attention = [(3 * dim, dim)] if fused else [(dim, dim)] * 3
    layer = attention + [(dim, dim)] * 3 + [(ffn_dim, dim), (dim, ffn_dim)]  # self out, cross query, cross out, up, down
    heads = [(NUM_CODEBOOKS * CARD, dim)] if fused else [(CARD, dim)] * NUM_CODEBOOKS
    return layer * num_hidden_layers + heads


def _seconds_per_pass(run, repeats: int, clock) -> float:
    """The fastest of `repeats` passes: what the memory can reach (a bound), where a slower pass is a neighbour's
    traffic; a median let a decode step's own matmuls outrun their "bound" on a shared machine."""
    run()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append(clock() - start)
    return min(times)


@torch.inference_mode()
def measure_bound(shape: str, rows: int = 2, repeats: int = 15, clock=time.perf_counter) -> dict:
    """GB/s of each way over one decode step's weights, and the bound in steps/s; see the module docstring."""
    sizes = SHAPES[shape]
    plain = decode_matrices(**sizes, fused=False)
    weights = [torch.randn(out_features, in_features) for out_features, in_features in plain]
    inputs = {width: torch.randn(rows, 1, width) for width in (sizes["hidden_size"], sizes["ffn_dim"])}
    float_bytes = sum(weight.numel() * 4 for weight in weights)
    int8_bytes = float_bytes // 4
    int4_bytes = float_bytes // 8 + float_bytes // 4 // INT4_GROUP_SIZE * 4  # codes, and a scale and zero a group
    seconds = {
        "nn.Linear": _seconds_per_pass(lambda: [F.linear(inputs[w.shape[1]], w) for w in weights], repeats, clock),
        "read": _seconds_per_pass(lambda: [w.sum() for w in weights], repeats, clock),
    }
    del weights
    for name, module in (("packed", PackedLinear), ("int8", Int8Linear), ("int4", Int4Linear)):
        if name == "packed" and not can_pack(torch.empty(0)):
            continue
        layers = [module(nn.Linear(i, o, bias=False)) for o, i in decode_matrices(**sizes, fused=True)]
        widths = [i for _, i in decode_matrices(**sizes, fused=True)]
        seconds[name] = _seconds_per_pass(lambda: [layer(inputs[w]) for layer, w in zip(layers, widths)], repeats, clock)
        del layers
    bytes_of = {"int8": int8_bytes, "int4": int4_bytes}
    bandwidth = {name: bytes_of.get(name, float_bytes) / value / 1e9 for name, value in seconds.items()}
    best_float = max(value for name, value in bandwidth.items() if name in ("nn.Linear", "packed"))
    return {
        "shape": shape, "rows": rows, "threads": torch.get_num_threads(), "weight_mb": round(float_bytes / 1e6, 1),
        "gb_per_s": {name: round(value, 1) for name, value in bandwidth.items()},
        "bound_steps_per_s": round(best_float * 1e9 / float_bytes, 1),
        "int8_bound_steps_per_s": round(best_float * 1e9 / int8_bytes, 1),
        "int4_bound_steps_per_s": round(best_float * 1e9 / int4_bytes, 1),
        "read_bound_steps_per_s": round(bandwidth["read"] * 1e9 / float_bytes, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=list(SHAPES), default="small")
    parser.add_argument("--rows", type=int, default=2, help="activation rows: 2 per prompt under guidance")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this thread's CPU time, steadier on a loaded machine (use with --threads 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    print(json.dumps(measure_bound(args.shape, args.rows, clock=clock)))


if __name__ == "__main__":
    main()
