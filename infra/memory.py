"""Giving the memory that a load freed back to the operating system.

Loading a model allocates and frees gigabytes of temporaries: float32 weights read before they are cast, packed
or quantized, and a first generation replaces more (the codec's weight norm folded, the LM's CPU layout). glibc's allocator keeps freed blocks for reuse wherever they lie in its heap, and returns only a
free top of the heap by itself, so that after a load the resident set can stay hundreds of MB above what the model
holds, by the chance of the order in which blocks were freed (docs/benchmarks.md: 850 MB or 1700 MB after the same
int4 load). `malloc_trim(0)` hands every free page back at once.

A load that quantizes leaves a second trace: each weight's small quantized result is allocated between the float32
temporaries of its quantization, so the heap ends up long-lived blocks with holes between them. The holes are
handed back, but the allocations of a generation fall into them and fault their pages in anew, and what is freed
there stays resident. `gather_buffers` copies such results into one allocation of their own (a large one, which
glibc maps apart from its heap), so the heap that the temporaries leave is free from end to end.
"""
from __future__ import annotations

import ctypes
from collections.abc import Iterable

import torch
from torch import nn

ALIGNMENT = 64  # bytes: each gathered buffer starts on a cache line, as torch's own allocations do


def release_free_memory() -> None:
    """Return the C allocator's free pages to the operating system: glibc's malloc_trim(0); a no-op where the C
    library has none (macOS, musl, Windows)."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):
        return
    malloc_trim(0)


def gather_buffers(modules: Iterable[nn.Module]) -> None:
    """Copy the buffers of `modules` (their own, not their children's) into one new allocation, each an aligned view of
    it, and let the old ones go. Their values, dtypes and shapes stay; they must all be on one device."""
    buffers = [(module, name, buffer) for module in modules for name, buffer in module.named_buffers(recurse=False)]
    devices = {buffer.device for _, _, buffer in buffers}
    if len(devices) > 1:
        raise ValueError(f"gather_buffers gathers buffers on one device, got {sorted(map(str, devices))}")
    nbytes = [buffer.numel() * buffer.element_size() for _, _, buffer in buffers]
    starts = [0]
    for size in nbytes:
        starts.append(starts[-1] + -(-size // ALIGNMENT) * ALIGNMENT)
    block = torch.empty(starts[-1], dtype=torch.uint8, device=devices.pop() if devices else None)
    for (module, name, buffer), start, size in zip(buffers, starts, nbytes):
        view = block[start: start + size].view(buffer.dtype).view(buffer.shape)
        setattr(module, name, view.copy_(buffer))
