"""Giving the memory that a load freed back to the operating system.

Loading a model allocates and frees gigabytes of temporaries: float32 weights read before they are cast, packed
or quantized, and a first generation replaces more (the codec's weight norm folded, the LM's CPU layout). glibc's allocator keeps freed blocks for reuse wherever they lie in its heap, and returns only a
free top of the heap by itself, so that after a load the resident set can stay hundreds of MB above what the model
holds, by the chance of the order in which blocks were freed (docs/benchmarks.md: 850 MB or 1700 MB after the same
int4 load). `malloc_trim(0)` hands every free page back at once.
"""
from __future__ import annotations

import ctypes


def release_free_memory() -> None:
    """Return the C allocator's free pages to the operating system: glibc's malloc_trim(0); a no-op where the C
    library has none (macOS, musl, Windows)."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):
        return
    malloc_trim(0)
