"""The float32 weight layout this CPU decodes fastest with, measured once per machine and remembered.

    layout = choose_cpu_layout(lm)    # "packed" or "plain"; the LM is left in that layout, its projections fused

A decode step multiplies a few rows by every weight, so it runs at the speed its matmul streams the weights, and
which kernel streams faster depends on the CPU: oneDNN's blocked layout (`fast_linear.PackedLinear`) ran 1.8x
nn.Linear's on an AMD EPYC (AVX2) and 0.9x on a Xeon with AMX (issue 26). So both are timed, on the LM's own
weights with its projections fused (`LM.fuse_projections`, as both decode with them): the best of STEP_PASSES
passes of PACKED_ROWS rows through every matrix a decode step reads. The faster one is kept and remembered in
$XDG_CACHE_HOME/musicgen-lite/cpu_layouts.json (or ~/.cache/...), keyed by the CPU's model name, torch's version,
the thread count and the LM's matrix shapes: each machine measures each LM shape once.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from infra.files import atomic_write, cache_folder

from .fast_linear import PACKED_ROWS, PackedLinear, can_pack
from .lm import LM

STEP_PASSES = 5
LAYOUTS = ("packed", "plain")
CALL_ONCE = ("cross_attention.key_value",)  # matrices a call runs once (the text's keys and values), not every step


def choose_cpu_layout(lm: LM, cache: Path | None = None) -> str:
    """Lay a float32 CPU LM out as the faster of "packed" (PackedLinear) and "plain" (nn.Linear), both with fused
    projections, by the remembered measurement for this machine and shape or a new one (a few passes over the
    weights); returns the layout. `cache`: the JSON file of measurements (default `layout_cache_path()`)."""
    if not can_pack(lm.norm.weight):
        raise ValueError("choose_cpu_layout lays out float32 LMs on a CPU with oneDNN; check fast_linear.can_pack first")
    cache = cache or layout_cache_path()
    key = machine_key(lm)
    known = _read_cache(cache)
    layout = known.get(key, {}).get("layout")
    if layout not in LAYOUTS:
        lm.fuse_projections()
        seconds = {"plain": step_pass_seconds(lm)}
        lm.pack_for_cpu()
        seconds["packed"] = step_pass_seconds(lm)
        layout = min(LAYOUTS, key=seconds.__getitem__)
        _write_cache(cache, {**known, key: {"layout": layout, "seconds_per_pass": seconds}})
    if layout == "packed":
        lm.pack_for_cpu()
    else:
        lm.unpack().fuse_projections()
    return layout


def layout_cache_path() -> Path:
    """$XDG_CACHE_HOME (or ~/.cache)/musicgen-lite/cpu_layouts.json (`infra.files.cache_folder`), read at call time."""
    return cache_folder() / "cpu_layouts.json"


def machine_key(lm: LM) -> str:
    """What the measurement depends on: the CPU model, torch's version, the thread count and the LM's matrices."""
    c = lm.config
    return (f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads | dim {c.dim} ffn "
            f"{c.ffn_dim} layers {c.num_layers} codebooks {c.num_codebooks} cardinality {c.cardinality} "
            f"cross-attention {c.cross_attention}")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo's on Linux, else platform's), or "unknown CPU"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@torch.no_grad()
def step_pass_seconds(lm: LM) -> float:
    """The best of STEP_PASSES timings of PACKED_ROWS rows through every matrix of the layers and heads that a decode
    step reads (each on its own input: the time of streaming the weights, not of the LM's arithmetic)."""
    matrices = [module for name, module in lm.named_modules()
                if isinstance(module, (nn.Linear, PackedLinear)) and name.startswith(("layers.", "fused_heads", "heads."))
                and not name.endswith(CALL_ONCE)]
    inputs = [torch.randn(PACKED_ROWS, matrix.in_features) for matrix in matrices]
    best = float("inf")
    for _ in range(STEP_PASSES):
        start = time.perf_counter()
        for matrix, x in zip(matrices, inputs, strict=True):
            matrix(x)
        best = min(best, time.perf_counter() - start)
    return best


def _read_cache(path: Path) -> dict:
    """The remembered measurements; none where the file is missing or not a JSON object (it is then rewritten)."""
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _write_cache(path: Path, known: dict) -> None:
    """Write the measurements atomically; a cache that cannot be written only costs a measurement next time."""
    try:
        atomic_write(path, lambda temporary: temporary.write_text(json.dumps(known, indent=1) + "\n"))
    except OSError:
        pass
