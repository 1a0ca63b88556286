"""Training checkpoints: atomic saves, the newest one, RNG states, and keeping the last N.

A checkpoint is one file `checkpoint_{step:08d}.pt` holding a dict of plain state (state dicts,
numbers, lists, RNG states as tensors), loaded with `weights_only=True`: no pickled code.

    save_checkpoint(run_dir, step, {"model": model.state_dict(), "rng": rng_state(), ...}, keep_last=3)
    path = latest_checkpoint(run_dir)          # None when there is none
    state = load_checkpoint(path)
    restore_rng_state(state["rng"])

A run folder is claimed before anything is written to it: `claim_run_dir` refuses one that already holds
a run unless the run resumes it (or is told to overwrite it), so a second run never mixes with the first.
"""
from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import ConfigError
from .distributed import DistributedEnv, barrier, seed_everything
from .files import atomic_write

CHECKPOINT_PATTERN = re.compile(r"^checkpoint_(\d{8})\.pt$")
RUN_FILES = ("config.yaml", "log.jsonl", "model")  # beside the checkpoints, what a training run writes


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"checkpoint_{step:08d}.pt"


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step, or None."""
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1][1] if checkpoints else None


def save_checkpoint(directory: str | Path, step: int, state: dict[str, Any], keep_last: int = 0) -> Path:
    """Atomically write `state` (plus its step) and delete all but the newest `keep_last` (0: keep all)."""
    path = checkpoint_path(directory, step)
    atomic_write(path, lambda temporary: torch.save({**state, "step": step}, temporary))
    for stale in Path(directory).glob(".checkpoint_*.tmp*.pt"):  # left by a writer killed mid-save
        stale.unlink(missing_ok=True)
    if keep_last > 0:
        for _, old in list_checkpoints(directory)[:-keep_last]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The RNG states of python, numpy, torch CPU, every CUDA device and the named `generators`
    (e.g. a module's own torch.Generator), as loadable plain data."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": position,
                  "has_gauss": has_gauss, "cached_gaussian": cached_gaussian},
        "torch": torch.get_rng_state(),
        "generators": {name: generator.get_state() for name, generator in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Put back RNG states saved by `rng_state`, including those of the same named `generators`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in (generators or {}).items():
        if name not in state["generators"]:
            raise ValueError(f"the checkpoint holds no state for generator {name!r}; it has {sorted(state['generators'])}")
        generator.set_state(state["generators"][name])


def restore_rank_rng(saved: list[dict[str, Any]], env: DistributedEnv, fallback_seed: int,
                     generators: dict[str, torch.Generator] | None = None) -> None:
    """This rank's states from `saved` (one `rng_state` per rank). Resumed with another process count,
    the named generators take rank 0's states and the global RNGs are reseeded per rank instead."""
    if len(saved) == env.world_size:
        restore_rng_state(saved[env.rank], generators)
        return
    seed_everything(fallback_seed, env.rank)
    for name, generator in (generators or {}).items():
        generator.set_state(saved[0]["generators"][name])


def run_files(run_dir: str | Path) -> list[Path]:
    """The files of a training run in `run_dir` (checkpoints, config, log, export); other files are not the run's."""
    run_dir = Path(run_dir)
    named = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    return named + [path for _, path in list_checkpoints(run_dir)]


def claim_run_dir(run_dir: str | Path, env: DistributedEnv, *, resume: bool, overwrite: bool) -> None:
    """Make sure a new run does not mix with one already in `run_dir`, before any process writes there.

    A folder holding a run is refused (ConfigError) unless `resume` continues it or `overwrite` asks to start
    again; then the main process deletes that run's files (not the folder's other files, such as a token cache).
    Every process checks before any deletes, so all of them agree.
    """
    if resume and overwrite:
        raise ConfigError("resume continues the run in run_dir and overwrite deletes it: give one of them")
    found = run_files(run_dir)
    if found and not (resume or overwrite):
        names = ", ".join(path.name + ("/" if path.is_dir() else "") for path in found[:4])
        more = f" and {len(found) - 4} more" if len(found) > 4 else ""
        raise ConfigError(f"run_dir {run_dir} already holds a run ({names}{more}); pass --resume to continue it, "
                          "--overwrite to delete it and start again, or choose another run_dir")
    barrier()
    if overwrite and env.is_main:
        for path in found:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    barrier()
