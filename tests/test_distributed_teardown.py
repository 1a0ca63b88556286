"""Leaving the process group, with two real gloo processes under torchrun: on success every rank waits for the
slowest before any tears down, and the group's threads are gone before the interpreter shuts down, even after DDP
and FSDP kept references to the group; after an error on one rank the run stops at once.

Run as a script (the tests do, under torchrun), this file is the worker: `test_distributed_teardown.py succeed|fail`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__]
SLOW_RANK_DELAY = 1.0      # seconds rank 1 spends before leaving the group
GLOO_THREADS = ("gloo", "pt_gloo")

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")


def gloo_threads() -> int:
    """How many of this process's threads belong to gloo (its socket loop and the process group's workers)."""
    names = (Path("/proc/self/task", task, "comm").read_text() for task in os.listdir("/proc/self/task"))
    return sum(name.startswith(GLOO_THREADS) for name in names)


def train_wrapped_models() -> None:
    """A step of a DDP and of an FSDP model, then the FSDP model's full state dict: what the trainers leave behind."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(nn.Linear(4, 4))
    ddp(torch.randn(2, 4)).sum().backward()
    fsdp = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 4))
    for layer in fsdp:
        fully_shard(layer)
    fully_shard(fsdp)
    fsdp(torch.randn(2, 4)).sum().backward()
    nn.utils.clip_grad_norm_(fsdp.parameters(), 1.0)
    get_model_state_dict(fsdp, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def succeed() -> None:
    """Both ranks train; rank 1 is slow to finish. One JSON line per rank on stdout."""
    from infra.distributed import process_group

    with process_group("cpu") as env:
        train_wrapped_models()
        threads_in_group = gloo_threads()
        if env.rank == 1:
            time.sleep(SLOW_RANK_DELAY)
        arrived = time.time()
    # One write of the whole line: torchrun runs the ranks unbuffered (python -u), where print's text and its newline
    # are two writes, and the other rank's line can land between them.
    sys.stdout.write(json.dumps({"rank": env.rank, "arrived": arrived, "left": time.time(),
                                 "threads_in_group": threads_in_group, "threads_after": gloo_threads()}) + "\n")
    sys.stdout.flush()


def fail() -> None:
    """Rank 1 raises while rank 0 waits in a collective that rank 1 never joins."""
    from infra.distributed import all_reduce_sum, process_group

    with process_group("cpu") as env:
        if env.rank == 1:
            raise RuntimeError("rank 1 failed on purpose")
        all_reduce_sum(torch.ones(1))


def torchrun(mode: str, timeout: float) -> subprocess.CompletedProcess:
    """This file's worker in `mode` on two processes; past `timeout`, torchrun is stopped with its workers."""
    process = subprocess.Popen(TORCHRUN + [mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()                        # torchrun passes SIGTERM on to its workers
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_ranks_leave_together_and_the_group_threads_end_before_exit():
    result = torchrun("succeed", timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    records = sorted((json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")),
                     key=lambda record: record["rank"])
    assert [record["rank"] for record in records] == [0, 1], result.stdout
    for record in records:
        assert record["threads_in_group"] > 0, "no gloo threads seen while in the group: the check would prove nothing"
        assert record["threads_after"] == 0, f"rank {record['rank']}: gloo threads still running after cleanup"
    slow_arrived = records[1]["arrived"]
    assert all(record["left"] >= slow_arrived for record in records), "a rank left before the slow one had finished"


def test_a_failing_rank_stops_the_run_without_waiting_for_the_others():
    # A barrier on the way out would pair rank 1 with nothing (rank 0 waits in an all-reduce): a hang, here a timeout.
    result = torchrun("fail", timeout=60)
    assert result.returncode != 0
    assert "rank 1 failed on purpose" in result.stderr


if __name__ == "__main__":
    {"succeed": succeed, "fail": fail}[sys.argv[1]]()
