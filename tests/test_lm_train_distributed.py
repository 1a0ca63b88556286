"""LM training through the real entry point in subprocesses: 2-process gloo runs (DDP and FSDP) match one process
with the same global batch, and a run killed with SIGKILL and resumed ends bitwise where an uninterrupted one does."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from infra.checkpoints import checkpoint_path, load_checkpoint
from infra.train_log import read_jsonl

from lm_train_inputs import TORCHRUN, TRAIN, make_sources, train_config, train_in_process, write_caches, write_config

TIMING_KEYS = ("step_time", "tokens_per_second")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("sources"))


def run(command: list[str], timeout: float = 240) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def exported_weights(export: Path) -> dict[str, torch.Tensor]:
    weights = {f"lm.{name}": tensor for name, tensor in load_file(export / "lm.safetensors").items()}
    weights.update({f"text.{name}": tensor for name, tensor in load_file(export / "text_encoder" / "model.safetensors").items()})
    return weights


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_processes_train_like_one_with_the_same_global_batch(sources, tmp_path, sharding):
    # Clips of unequal length: padding makes the token counts differ between processes and micro-batches.
    write_caches(tmp_path / "tokens", [4, 6, 3, 6, 5])
    common = dict(steps=3, checkpoint_every=3, train_text_encoder=True,
                  data={"batch_size": 4, "condition_dropout": 0.3, "word_dropout": 0.3},
                  optim={"lr": 1e-3, "warmup_steps": 0, "min_lr_factor": 1.0})
    two = train_config(sources, tmp_path / "two", tmp_path / "tokens", fsdp=sharding == "fsdp", **common)
    two["data"]["micro_batch_size"] = 1            # 4 = 2 processes x 2 accumulated micro-batches of 1
    command = TORCHRUN + ["--config", str(write_config(two, tmp_path / "two.yaml"))]
    if sharding == "fsdp":                         # sharded state also goes through a checkpoint: 2 steps, then 1 more
        run(command + ["steps=2"])
        run(command + ["--resume"])
    else:
        run(command)
    one = train_in_process(train_config(sources, tmp_path / "one", tmp_path / "tokens", **common))

    one_log, two_log = read_jsonl(tmp_path / "one" / "log.jsonl"), read_jsonl(tmp_path / "two" / "log.jsonl")
    assert [record["tokens"] for record in two_log] == [record["tokens"] for record in one_log]
    for one_record, two_record in zip(one_log, two_log, strict=True):
        assert two_record["loss"] == pytest.approx(one_record["loss"], rel=1e-5)
        assert two_record["grad_norm"] == pytest.approx(one_record["grad_norm"], rel=1e-4)
    one_weights, two_weights = exported_weights(one), exported_weights(tmp_path / "two" / "model")
    assert one_weights.keys() == two_weights.keys()
    for name, tensor in one_weights.items():
        torch.testing.assert_close(two_weights[name], tensor, rtol=0, atol=1e-4, msg=name)


def test_killed_and_resumed_run_ends_bitwise_like_an_uninterrupted_one(sources, tmp_path):
    write_caches(tmp_path / "tokens", [40, 25, 48, 33])
    config = train_config(sources, tmp_path / "whole", tmp_path / "tokens", frames=32, steps=40, checkpoint_every=5,
                          data={"condition_dropout": 0.3, "word_dropout": 0.3, "batch_size": 16},
                          model={"lm": {"num_codebooks": 3, "cardinality": 16, "dim": 64, "num_heads": 4,
                                        "num_layers": 2,
                                        "ffn_dim": 128, "condition_dim": 32, "max_positions": 64, "dropout": 0.1}})
    train_in_process(config)      # in this process, on one thread like the others

    killed = {**config, "run_dir": str(tmp_path / "killed")}
    command = TRAIN + ["--config", str(write_config(killed, tmp_path / "killed.yaml"))]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not checkpoint_path(tmp_path / "killed", 10).exists() and process.poll() is None:
            assert time.monotonic() < deadline, "the run wrote no checkpoint in time"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not checkpoint_path(tmp_path / "killed", 40).exists()
    run(command + ["--resume"])

    whole, resumed = tmp_path / "whole", tmp_path / "killed"
    assert (whole / "model" / "lm.safetensors").read_bytes() == (resumed / "model" / "lm.safetensors").read_bytes()
    final_whole, final_resumed = (load_checkpoint(checkpoint_path(run_dir, 40)) for run_dir in (whole, resumed))
    for name, state in final_whole["optimizer"]["state"].items():
        for key, tensor in state.items():
            assert torch.equal(final_resumed["optimizer"]["state"][name][key], tensor), (name, key)
    strip = lambda log: [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in log]  # noqa: E731
    assert strip(read_jsonl(resumed / "log.jsonl")) == strip(read_jsonl(whole / "log.jsonl"))
