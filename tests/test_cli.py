"""musicgen-generate through real subprocesses against a tiny random model saved here; the output helpers in-process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from codec_audio import sine
from test_chroma import notes
from test_hub_cache import cache_as_hub
from test_musicgen_hf import build_hf_musicgen
from test_musicgen_hf_melody import build_hf_melody
from tiny_models import TINY_FRAME_RATE, TINY_SAMPLE_RATE, save_tiny_musicgen

from infra.audio import read_audio
from musicgen import MusicGen
from musicgen.audio_output import prepare_for_writing, write_atomically

COMMAND = str(Path(sys.executable).with_name("musicgen-generate"))
CONTEXT_FRAMES = 37                               # the tiny model's window
SAMPLES_PER_FRAME = TINY_SAMPLE_RATE // TINY_FRAME_RATE


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_musicgen(tmp_path_factory.mktemp("tiny"))


def generate(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, *arguments], cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
                          env=None if env is None else {**os.environ, **env})


def records(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_three_contexts_long_file_at_the_model_rate_with_a_progress_bar(model_dir, tmp_path):
    seconds = 3 * CONTEXT_FRAMES / TINY_FRAME_RATE
    result = generate("--text", "Lo-fi piano, soft drums!", "--duration", str(seconds), "--model", str(model_dir),
                      "--seed", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [record] = records(result)
    path = tmp_path / "lo-fi-piano-soft-drums.wav"
    assert record == {"path": "lo-fi-piano-soft-drums.wav", "prompt": "Lo-fi piano, soft drums!", "seconds": seconds,
                      "sample_rate": TINY_SAMPLE_RATE, "seed": 3}
    info = soundfile.info(str(path))
    assert (info.samplerate, info.frames, info.channels) == (TINY_SAMPLE_RATE, 3 * CONTEXT_FRAMES * SAMPLES_PER_FRAME, 1)
    assert "step/s" in result.stderr and "Traceback" not in result.stderr


def test_prompts_file_of_five_in_batches_of_two_writes_five_files(model_dir, tmp_path):
    (tmp_path / "prompts.txt").write_text("epic\nslow bass\n\n  epic \nguitar\nwarm pads\n")
    result = generate("--prompts-file", "prompts.txt", "--batch-size", "2", "--duration", "0.01", "--format", "flac",
                      "--out-dir", "songs", "--model", str(model_dir), "--seed", "10", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = records(result)
    assert [record["prompt"] for record in written] == ["epic", "slow bass", "epic", "guitar", "warm pads"]
    assert [record["path"] for record in written] == [
        "songs/epic.flac", "songs/slow-bass.flac", "songs/epic-2.flac", "songs/guitar.flac", "songs/warm-pads.flac"]
    assert [record["seed"] for record in written] == [10] * 5  # one seed: prompt i samples from (10, i)
    assert sorted(path.name for path in (tmp_path / "songs").iterdir()) == sorted(Path(r["path"]).name for r in written)
    assert all(soundfile.info(str(tmp_path / record["path"])).frames == 10 * SAMPLES_PER_FRAME for record in written)
    assert "step/s" not in result.stderr


def test_continuation_of_a_recording_at_another_rate(model_dir, tmp_path):
    soundfile.write(tmp_path / "riff.wav", sine(440, 0.02, 16000, channels=2), 16000)
    result = generate("--continue-from", "riff.wav", "--duration", "0.03", "--greedy", "--model", str(model_dir),
                      "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert records(result) == [{"path": "riff-continued.wav", "prompt": "", "seconds": 0.03,
                                "sample_rate": TINY_SAMPLE_RATE, "seed": records(result)[0]["seed"]}]
    written, rate = soundfile.read(str(tmp_path / "riff-continued.wav"), dtype="float32", always_2d=True)
    model = MusicGen.from_pretrained(model_dir, device="cpu")
    recording = torch.from_numpy(sine(440, 0.02, 16000, channels=2).T.copy())
    expected = model.generate_continuation(recording, 16000, duration=0.03, use_sampling=False)[0].clamp(-1, 1)
    assert rate == TINY_SAMPLE_RATE and written.shape == (30 * SAMPLES_PER_FRAME, 1)
    assert np.abs(written[:, 0] - expected[0].numpy()).max() <= 1 / 2**15     # 16-bit PCM


def test_existing_files_are_kept_without_force(model_dir, tmp_path):
    (tmp_path / "epic.wav").write_bytes(b"keep me")
    result = generate("--text", "epic", "--model", str(model_dir), cwd=tmp_path)
    assert result.returncode == 1 and "epic.wav exists" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "epic.wav").read_bytes() == b"keep me"


def test_a_failure_mid_batch_keeps_the_files_written_and_names_the_batch(model_dir, tmp_path):
    (tmp_path / "slow-bass.wav").mkdir()                         # the second file cannot replace a directory
    result = generate("--text", "epic", "--text", "slow bass", "--text", "guitar", "--batch-size", "1", "--force",
                      "--duration", "0.005", "--model", str(model_dir), "--quiet", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "batch 2/3 (prompts 2-2 of 3, from 'slow bass') failed" in result.stderr
    assert "kept the files written so far: 1" in result.stderr
    assert [record["path"] for record in records(result)] == ["epic.wav"]
    assert soundfile.info(str(tmp_path / "epic.wav")).frames == 5 * SAMPLES_PER_FRAME
    assert not (tmp_path / "guitar.wav").exists() and not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("arguments, message", [
    ([], "give --text"),
    (["--text", "a", "--duration", "0"], "--duration: expected a number > 0"),
    (["--text", "a", "--batch-size", "two"], "--batch-size: expected an integer > 0"),
    (["--text", "a", "--top-p", "1.5"], "--top-p: expected a number in [0, 1]"),
    (["--text", "a", "--temperature", "nan"], "--temperature: expected a number >= 0"),
    (["--text", "a", "--format", "mp3"], "invalid choice: 'mp3'"),
    (["--text", "a", "--text", "b", "--out", "x.wav"], "--out names one file"),
    (["--text", "a", "--out", "x.mp3"], "--out must end in .wav or .flac"),
    (["--text", "a", "--out", "x.wav", "--out-dir", "d"], "not allowed with argument"),
    (["--prompts-file", "missing.txt"], "cannot read --prompts-file"),
    (["--text", "a", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["--text", "a", "--downbeat", "0.5"], "--downbeat places the bars of a --continue-from recording"),
    (["--continue-from", "riff.wav", "--downbeat", "-1"], "--downbeat: expected a number >= 0"),
    (["--continue-from", "missing.wav"], "no such file: missing.wav"),
    (["--text", "a", "--out-dir", "taken.txt"], "cannot write into taken.txt: taken.txt is a file, not a folder"),
    (["--text", "a", "--out", "taken.txt/sub/a.wav"], "cannot write into taken.txt/sub: taken.txt is a file"),
    (["--text", "drums at 1e3 bpm"], "the prompt 'drums at 1e3 bpm' states a tempo of 1000 BPM; expected 20 to 400"),
    (["--text", "ok", "--text", "fast, -120 bpm"], "the prompt 'fast, -120 bpm' states a tempo of -120 BPM"),
    (["--text", "120 bpm or tempo 90"], "states 2 tempi (90, 120 BPM)"),
    (["--text", "a", "--unconditional", "2"], "not allowed with argument"),
    (["--unconditional", "0"], "--unconditional: expected an integer > 0"),
    (["--text", "a", "--int8", "--int4"], "not allowed with argument"),
    (["--text", "a", "--text", "b", "--text", "c", "--melody", "m.wav", "--melody", "m.wav"],
     "give one --melody for all 3 prompts, or one per prompt in order; got 2"),
    (["--continue-from", "riff.wav", "--melody", "m.wav"], "--melody and --continue-from do not go together"),
    (["--text", "a", "--melody", "missing.wav"], "no such file: missing.wav"),
    (["--text", "a", "--melody", "."], "--melody must be an audio file, got the folder ."),
])
def test_bad_arguments_exit_2_with_a_message(tmp_path, arguments, message):
    (tmp_path / "taken.txt").write_text("a file")
    # (no model exists at --model: every one of these is found before a model would load)
    result = generate(*arguments, "--model", str(tmp_path / "no-model"), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("arguments, message", [
    (["--duration", "0.0004"], "duration 0.0004 s is shorter than one frame (1/1000 s)"),
    (["--duration", "0.2", "--stride", "0.05"], "stride must be at least one frame (1/1000 s) and shorter than a window"),
])
def test_lengths_the_model_cannot_take_exit_2_before_generating(model_dir, tmp_path, arguments, message):
    result = generate("--text", "a", "--text", "b", *arguments, "--model", str(model_dir), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert "step/s" not in result.stderr and not result.stdout and not list(tmp_path.iterdir())


def test_a_prompt_of_spaces_is_unconditional(model_dir, tmp_path):
    result = generate("--text", "   ", "--text", "", "--duration", "0.01", "--seed", "1", "--model", str(model_dir),
                      "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [record["path"] for record in records(result)] == ["unconditional.wav", "unconditional-2.wav"]
    model = MusicGen.from_pretrained(model_dir, device="cpu")
    _, mask = model.conditioner(["   ", "a"])
    assert not mask[0].any() and mask[1].any()  # nothing to attend to, as for ""
    with pytest.raises(ValueError, match="the prompt 'at 1000 bpm' states a tempo of 1000 BPM"):
        model.generate(["at 1000 bpm"], duration=0.01)  # checked whether or not the LM has a beat clock
    _, spaces = model.generate(["   ", "a"], duration=0.01, seed=1, return_codes=True)
    _, empty = model.generate(["", "a"], duration=0.01, seed=1, return_codes=True)
    assert torch.equal(spaces, empty)


def one_line_failure(result: subprocess.CompletedProcess, message: str) -> bool:
    lines = result.stderr.strip().splitlines()
    return result.returncode == 1 and len(lines) == 1 and message in lines[0] and not result.stdout


def test_missing_model_directories_exit_1_naming_the_path(tmp_path):
    result = generate("--text", "a", "--model", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert one_line_failure(result, f"no checkpoint directory at {tmp_path / 'nowhere'}")


@pytest.mark.parametrize("weights, damage", [("lm.safetensors", "truncated"), ("codec/model.safetensors", "garbage"),
                                            ("text_encoder/model.safetensors", "truncated")])
def test_corrupt_weights_exit_1_naming_the_file(model_dir, tmp_path, weights, damage):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    data = (broken / weights).read_bytes()
    (broken / weights).write_bytes(data[: len(data) // 2] if damage == "truncated" else bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        MusicGen.from_pretrained(broken, device="cpu")
    result = generate("--text", "a", "--model", str(broken), cwd=tmp_path)
    assert one_line_failure(result, "not a readable safetensors file")
    assert f"cannot load the model: {broken / Path(weights).parts[0]}" in result.stderr


def test_unreadable_or_too_long_continuation_audio_exits_1(model_dir, tmp_path):
    (tmp_path / "riff.wav").write_text("not audio")
    result = generate("--continue-from", "riff.wav", "--model", str(model_dir), cwd=tmp_path)
    assert one_line_failure(result, "cannot read --continue-from audio riff.wav")
    soundfile.write(tmp_path / "long.wav", sine(440, 0.05, 8000), 8000)
    result = generate("--continue-from", "long.wav", "--duration", "0.04", "--model", str(model_dir), cwd=tmp_path)
    assert one_line_failure(result, "the --continue-from recording (0.05 s) must be shorter than --duration (0.04 s)")
    result = generate("--continue-from", "long.wav", "--downbeat", "0.05", "--model", str(model_dir), cwd=tmp_path)
    assert one_line_failure(result, "--downbeat (0.05 s) must fall within the --continue-from recording (0.05 s)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_asked_for_but_absent_exits_1(model_dir, tmp_path):
    result = generate("--text", "a", "--device", "cuda", "--model", str(model_dir), cwd=tmp_path)
    assert one_line_failure(result, "CUDA is not available")


def test_peak_normalisation_and_counted_clipping():
    wav = torch.tensor([[0.5, -2.0, 1.5, 0.25]])
    clipped_wav, clipped = prepare_for_writing(wav)
    assert clipped == 2 and torch.equal(clipped_wav, torch.tensor([[0.5, -1.0, 1.0, 0.25]]))
    normalized, clipped = prepare_for_writing(wav, normalize=True)
    assert clipped == 0 and torch.allclose(normalized, wav * 10 ** (-1 / 20) / 2)   # a -1 dBFS peak
    silence, clipped = prepare_for_writing(torch.zeros(1, 4), normalize=True)
    assert clipped == 0 and not silence.any()


def test_atomic_write_replaces_whole_files_and_leaves_no_partial_one(tmp_path):
    wav = torch.full((2, 80), 0.5)
    write_atomically(tmp_path / "a.flac", wav, 8000)
    data, rate = soundfile.read(str(tmp_path / "a.flac"), always_2d=True)
    assert rate == 8000 and data.shape == (80, 2) and np.allclose(data, 0.5, atol=1e-4)
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(OSError):
        write_atomically(tmp_path / "dir.wav", wav, 8000)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.flac", "dir.wav"]


def test_unconditional_files_are_the_apis_empty_prompts(model_dir, tmp_path):
    result = generate("--unconditional", "2", "--duration", "0.01", "--seed", "4", "--model", str(model_dir),
                      "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [(record["path"], record["prompt"]) for record in records(result)] == [("unconditional.wav", ""),
                                                                                  ("unconditional-2.wav", "")]
    expected = MusicGen.from_pretrained(model_dir, device="cpu").generate(["", ""], duration=0.01, seed=4)
    for record, wav in zip(records(result), expected):
        written, _ = soundfile.read(str(tmp_path / record["path"]), dtype="float32", always_2d=True)
        assert np.abs(written[:, 0] - wav[0].clamp(-1, 1).numpy()).max() <= 1 / 2**15


def test_int4_files_are_the_apis_int4_generation(model_dir, tmp_path):
    result = generate("--text", "a", "--duration", "0.01", "--seed", "4", "--int4", "--model", str(model_dir),
                      "--quiet", "--out", "a.wav", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = MusicGen.from_pretrained(model_dir, device="cpu", quantize="int4").generate(["a"], duration=0.01, seed=4)
    written, _ = soundfile.read(str(tmp_path / "a.wav"), dtype="float32", always_2d=True)
    assert np.abs(written[:, 0] - expected[0, 0].clamp(-1, 1).numpy()).max() <= 1 / 2**15


def test_a_hub_id_loads_from_the_cache_the_environment_names(tmp_path):
    build_hf_musicgen(tmp_path / "download", audio_channels=2)
    cache_as_hub(tmp_path / "download", tmp_path / "cache", "facebook/musicgen-stereo-small")
    env = {"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    result = generate("--text", "epic", "--duration", "0.005", "--model", "facebook/musicgen-stereo-small", "--quiet",
                      cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    info = soundfile.info(str(tmp_path / "epic.wav"))
    assert (info.channels, info.frames) == (2, 5 * SAMPLES_PER_FRAME)          # a stereo model writes stereo files


def test_unreadable_melodies_exit_1_before_the_model_loads(tmp_path):
    (tmp_path / "tune.wav").write_text("not audio")
    result = generate("--text", "a", "--melody", "tune.wav", "--model", str(tmp_path / "no-model"), cwd=tmp_path)
    assert one_line_failure(result, "cannot read --melody audio tune.wav")


def test_one_melody_per_prompt_at_different_rates_is_the_apis_generate_with_chroma(tmp_path):
    build_hf_melody(tmp_path / "melody-model", "k4")
    soundfile.write(tmp_path / "a.wav", notes(1.0, 8000, seed=1).T.numpy(), 8000)
    soundfile.write(tmp_path / "b.flac", notes(0.6, 16000, seed=2, channels=2).T.numpy(), 16000)
    result = generate("--text", "epic", "--text", "slow bass", "--melody", "a.wav", "--melody", "b.flac", "--greedy",
                      "--batch-size", "1", "--duration", "0.012", "--model", str(tmp_path / "melody-model"), "--quiet",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [record["path"] for record in records(result)] == ["epic.wav", "slow-bass.wav"]
    model = MusicGen.from_pretrained(tmp_path / "melody-model", device="cpu")
    melodies = [read_audio(tmp_path / "a.wav"), read_audio(tmp_path / "b.flac", 8000)]   # at the first file's rate
    for record, prompt, melody in zip(records(result), ["epic", "slow bass"], melodies):
        [expected] = model.generate_with_chroma([prompt], [melody], 8000, duration=0.012, use_sampling=False)
        written, _ = soundfile.read(str(tmp_path / record["path"]), dtype="float32", always_2d=True)
        assert np.abs(written[:, 0] - expected[0].clamp(-1, 1).numpy()).max() <= 1 / 2**15
