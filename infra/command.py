"""The command line every training loop shares: `PROG --config FILE [--resume | --overwrite] key=value ...`.

    def main(argv=None):
        run_training(train, TrainConfig, prog="codec-train", description=..., example_config=..., example_overrides=...,
                     argv=argv)

The config is loaded with its dotted overrides, the process joins torchrun's group (if any), and `train(config, env,
resume=, overwrite=)` runs; a ConfigError, from the config or from train's checks, is one line and exit status 2.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .config import ConfigError, load_config
from .distributed import process_group


def parse_training_args(prog: str, description: str, example_config: str, example_overrides: str,
                        *, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`--config FILE [--resume] [--overwrite] key=value ...` (in any order)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help=f"YAML config, e.g. {example_config}")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in run_dir")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run already in run_dir (checkpoints, log, config, export) and start again")
    parser.add_argument("overrides", nargs="*", help=f"dotted overrides: {example_overrides}")
    args = parser.parse_intermixed_args(argv)
    if args.resume and args.overwrite:
        parser.error("--resume continues the run in run_dir and --overwrite deletes it: give one of them")
    return args


@contextlib.contextmanager
def exit_on_config_error(prog: str) -> Iterator[None]:
    """Print a ConfigError as one line `prog: error: ...` and exit with status 2, as argparse does."""
    try:
        yield
    except ConfigError as error:
        print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def run_training(train: Callable[..., Any], config_class: type, *, prog: str, description: str, example_config: str,
                 example_overrides: str, argv: Sequence[str] | None = None) -> None:
    """Parse the command line, load the config (a `threads` field > 0 sets torch's CPU threads), join the process
    group, and call train(config, env, resume=..., overwrite=...); on success every rank leaves the group together
    (`process_group`)."""
    args = parse_training_args(prog, description, example_config, example_overrides, argv=argv)
    with exit_on_config_error(prog):
        config = load_config(config_class, args.config, args.overrides)
    if getattr(config, "threads", 0) > 0:
        torch.set_num_threads(config.threads)
    with process_group(None if config.device == "auto" else config.device) as env:
        with exit_on_config_error(prog):
            train(config, env, resume=args.resume, overwrite=args.overwrite)
