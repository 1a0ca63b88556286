"""codec-train as real processes: two gloo ranks under torchrun, and resume after SIGKILL."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from infra.checkpoints import list_checkpoints, load_checkpoint
from infra.train_log import read_jsonl

from codec_audio import write_tones

TINY = str(Path(__file__).parents[1] / "configs" / "codec" / "tiny.yaml")
TRAIN = [sys.executable, "-m", "codec.train", "--config", TINY]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "codec.train", "--config", TINY]


def run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def flat_tensors(state, prefix=""):
    """Every tensor and number of a nested checkpoint dict, by dotted name."""
    if isinstance(state, dict):
        return {key: value for name, item in state.items() for key, value in flat_tensors(item, f"{prefix}{name}.").items()}
    if isinstance(state, (list, tuple)):
        return {key: value for index, item in enumerate(state) for key, value in flat_tensors(item, f"{prefix}{index}.").items()}
    return {prefix: state}


def test_two_gloo_processes_train_like_one_with_the_same_global_batch(tmp_path):
    write_tones(tmp_path / "audio", count=3)
    common = [f"data.path={tmp_path / 'audio'}", "checkpoint_every=2", "keep_checkpoints=0", "discriminator.start_step=2"]
    result = run(TORCHRUN + common + [f"run_dir={tmp_path / 'two'}", "steps=4"])
    assert "2 process(es) on cpu" in result.stdout
    assert [record["step"] for record in read_jsonl(tmp_path / "two" / "log.jsonl")] == [1, 2, 3, 4]
    assert (tmp_path / "two" / "model" / "model.safetensors").is_file()

    run(TRAIN + common + [f"run_dir={tmp_path / 'one'}", "steps=2"])
    two = load_checkpoint(tmp_path / "two" / "checkpoint_00000002.pt")
    one = load_checkpoint(tmp_path / "one" / "checkpoint_00000002.pt")
    assert len(two["rng"]) == 2 and len(one["rng"]) == 1
    for name, tensor in one["codec"].items():
        torch.testing.assert_close(two["codec"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_resume_after_sigkill_gives_the_same_weights(tmp_path):
    write_tones(tmp_path / "audio", count=2)
    common = [f"data.path={tmp_path / 'audio'}", "steps=32", "checkpoint_every=4", "discriminator.start_step=2"]
    run(TRAIN + common + [f"run_dir={tmp_path / 'straight'}"])

    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(TRAIN + common + [f"run_dir={killed_dir}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list_checkpoints(killed_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    killed_at = list_checkpoints(killed_dir)[-1][0]
    assert 4 <= killed_at < 32
    run(TRAIN + common + [f"run_dir={killed_dir}", "--resume"])

    straight, resumed = (flat_tensors({key: value for key, value in load_checkpoint(path).items() if key != "config"})
                         for path in (tmp_path / "straight" / "checkpoint_00000032.pt", killed_dir / "checkpoint_00000032.pt"))
    assert straight.keys() == resumed.keys()
    for name, value in straight.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, resumed[name]), name
        else:
            assert value == resumed[name], name
    assert (tmp_path / "straight" / "model" / "model.safetensors").read_bytes() == \
        (killed_dir / "model" / "model.safetensors").read_bytes()
    assert read_jsonl(tmp_path / "straight" / "log.jsonl")[-1]["mel"] == read_jsonl(killed_dir / "log.jsonl")[-1]["mel"]
    assert [record["step"] for record in read_jsonl(killed_dir / "log.jsonl")] == list(range(1, 33))
