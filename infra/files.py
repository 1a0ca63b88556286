"""Atomic file writes: a file is either whole (the new content) or as it was, never half written; and the
project's cache folder.

    atomic_write(path, lambda temporary: torch.save(state, temporary))
    atomic_write(path, lambda temporary: temporary.write_bytes(data))
    cache_folder() / "soundfonts"
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def cache_folder() -> Path:
    """$XDG_CACHE_HOME (or ~/.cache)/musicgen-lite, read at call time: what this project keeps between runs."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "musicgen-lite"


def temporary_path(path: Path) -> Path:
    """The hidden file beside `path` that `atomic_write` writes first; it keeps the suffix (a writer may choose
    the format by it)."""
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call write(temporary) to fill a temporary file beside `path`, fsync it, then rename it over `path`;
    on any error the temporary file is removed and `path` is left as it was. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
