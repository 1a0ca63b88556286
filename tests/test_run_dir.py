"""A run folder is never mixed with another run: both trainers (in one process and under torchrun) refuse a
run_dir that holds a run unless told --resume or --overwrite, and leave every file of the first run as it was."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from codec.train import main as codec_main
from infra.checkpoints import list_checkpoints
from infra.train_log import read_jsonl
from musicgen.train import main as lm_main

from codec_audio import write_tones
from lm_train_inputs import TORCHRUN as LM_TORCHRUN
from lm_train_inputs import make_sources, train_config, write_caches, write_config

TINY_CODEC = str(Path(__file__).parents[1] / "configs" / "codec" / "tiny.yaml")
CODEC_TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                  "-m", "codec.train", "--config", TINY_CODEC]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path, with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def assert_refused(error: str, run_dir: Path) -> None:
    assert f"run_dir {run_dir} already holds a run" in error
    assert "--resume" in error and "--overwrite" in error


def refuse_in_process(main, argv: list[str], run_dir: Path, capsys) -> None:
    before = snapshot(run_dir)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert_refused(error, run_dir)
    assert error.count("\n") == 1 and "Traceback" not in error
    assert snapshot(run_dir) == before


def refuse_under_torchrun(command: list[str], run_dir: Path) -> None:
    before = snapshot(run_dir)
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode != 0  # (torchrun adds its own report of the failed processes)
    assert_refused(result.stderr, run_dir)
    assert snapshot(run_dir) == before


def test_codec_train_keeps_a_run_unless_told_to_resume_or_overwrite(tmp_path, capsys):
    write_tones(tmp_path / "audio", count=2)
    run_dir = tmp_path / "run"
    common = ["--config", TINY_CODEC, f"data.path={tmp_path / 'audio'}", f"run_dir={run_dir}", "checkpoint_every=1",
              "keep_checkpoints=0", "loss.adversarial=0", "loss.feature=0"]
    codec_main([*common, "steps=3"])
    assert len(read_jsonl(run_dir / "log.jsonl")) == 3

    refuse_in_process(codec_main, [*common, "steps=2"], run_dir, capsys)
    refuse_under_torchrun([*CODEC_TORCHRUN, *common[2:], "steps=2"], run_dir)

    codec_main([*common, "steps=2", "--overwrite"])  # a new run: nothing of the first one stays behind
    assert [step for step, _ in list_checkpoints(run_dir)] == [1, 2]
    assert [record["step"] for record in read_jsonl(run_dir / "log.jsonl")] == [1, 2]
    codec_main([*common, "steps=4", "--resume"])
    assert [record["step"] for record in read_jsonl(run_dir / "log.jsonl")] == [1, 2, 3, 4]


def test_musicgen_train_keeps_a_run_unless_told_to_resume_or_overwrite(tmp_path, capsys):
    sources = make_sources(tmp_path / "sources")
    write_caches(tmp_path / "tokens", [6, 6, 6, 6])
    run_dir = tmp_path / "run"
    config = write_config(train_config(sources, run_dir, tmp_path / "tokens", steps=2, checkpoint_every=1,
                                       keep_checkpoints=0), tmp_path / "lm.yaml")
    lm_main(["--config", str(config)])

    refuse_in_process(lm_main, ["--config", str(config)], run_dir, capsys)
    refuse_under_torchrun([*LM_TORCHRUN, "--config", str(config)], run_dir)

    lm_main(["--config", str(config), "--overwrite", "steps=1"])
    assert [step for step, _ in list_checkpoints(run_dir)] == [1]
    assert [record["step"] for record in read_jsonl(run_dir / "log.jsonl")] == [1]


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        codec_main(["--config", TINY_CODEC, "--resume", "--overwrite", f"run_dir={tmp_path}"])
    assert exit_info.value.code == 2
    assert "give one of them" in capsys.readouterr().err


@pytest.mark.parametrize(("main", "config", "overrides", "message"), [
    (codec_main, TINY_CODEC, ["optim.momentum=0.9"], "unknown config key 'optim.momentum'; valid keys here:"),
    (codec_main, TINY_CODEC, ["steps=ten"], "config key 'steps' must be int, got 'ten'"),
    (codec_main, TINY_CODEC, ["loss.balancer=maybe"], "config key 'loss.balancer' must be true or false"),
    (codec_main, "missing.yaml", [], "config file not found: missing.yaml"),
    (lm_main, str(Path(__file__).parents[1] / "configs" / "lm" / "small.yaml"), ["optim.lr=fast"],
     "config key 'optim.lr' must be a number, got 'fast'"),
])
def test_config_errors_are_one_line_without_a_traceback(capsys, main, config, overrides, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", config, *overrides])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert error.count("\n") == 1


def test_a_config_error_from_the_command_line_exits_2_in_one_line(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("steps: [1, 2\n")
    result = subprocess.run([sys.executable, "-m", "codec.train", "--config", str(bad_yaml)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(f"codec-train: error: {bad_yaml} is not valid YAML")
    assert result.stderr.count("\n") == 1
