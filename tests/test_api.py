"""The MusicGen API: checkpoint round trips, seeds, continuation, the conditioner, and bad input."""
from __future__ import annotations

import math

import pytest
import torch

from musicgen import MusicGen
from musicgen.config import MusicGenConfig, PatternConfig

from test_musicgen_hf import build_hf_musicgen


@pytest.fixture(scope="module")
def hf_directory(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf_musicgen")
    build_hf_musicgen(path, "k4")
    return path


@pytest.fixture(scope="module")
def model(hf_directory):
    return MusicGen.from_pretrained(hf_directory, device="cpu")


def test_save_and_load_round_trip_keeps_the_output(model, tmp_path):
    wav, codes = model.generate(["epic", "lo-fi piano"], duration=0.01, seed=7, return_codes=True)
    model.save_pretrained(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["codec", "config.yaml", "lm.safetensors", "text_encoder"]
    loaded = MusicGen.from_pretrained(tmp_path, device="cpu")
    wav_again, codes_again = loaded.generate(["epic", "lo-fi piano"], duration=0.01, seed=7, return_codes=True)
    assert torch.equal(codes, codes_again)
    assert torch.equal(wav, wav_again)


def test_int8_model_generates_and_refuses_to_be_saved(hf_directory, tmp_path):
    quantized = MusicGen.from_pretrained(hf_directory, device="cpu", quantize="int8")
    wav = quantized.generate(["epic"], duration=0.005, seed=0)
    assert wav.shape == (1, 1, 40) and torch.isfinite(wav).all()
    with pytest.raises(ValueError, match="int8"):
        quantized.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="quantize"):
        MusicGen.from_pretrained(hf_directory, quantize="int3")


@pytest.mark.parametrize("pattern", [PatternConfig("valley"), PatternConfig("delay", {"delays": [0, 1, 1, 1]})])
def test_the_pattern_comes_from_the_config_and_survives_a_round_trip(model, tmp_path, pattern):
    other = MusicGen(MusicGenConfig(lm=model.lm.config, pattern=pattern), model.lm, model.conditioner, model.codec)
    assert other.max_frames == {"valley": 1024, "delay": 2047}[pattern.name]
    codes = other.generate(["epic"], duration=0.006, seed=3, return_codes=True)[1]
    other.save_pretrained(tmp_path)
    loaded = MusicGen.from_pretrained(tmp_path, device="cpu")
    assert loaded.config.pattern == pattern
    assert torch.equal(loaded.generate(["epic"], duration=0.006, seed=3, return_codes=True)[1], codes)


def test_generate_shapes_and_rates(model):
    assert model.sample_rate == 8000 and model.frame_rate == 1000
    wav, codes = model.generate(["epic"], duration=0.005, return_codes=True, seed=0)
    assert codes.shape == (1, 4, 5) and wav.shape == (1, 1, 40)
    assert model.generate(["epic"], duration=0.005, seed=0).shape == (1, 1, 40)


def test_same_seed_same_audio_other_seed_other_audio(model):
    first = model.generate(["slow bass"], duration=0.01, seed=1, top_k=0)
    assert torch.equal(first, model.generate(["slow bass"], duration=0.01, seed=1, top_k=0))
    assert not torch.equal(first, model.generate(["slow bass"], duration=0.01, seed=2, top_k=0))


def test_continuation_starts_with_the_prompt(model):
    prompt_wav = torch.randn(2, 1, 24) * 0.1
    prompt_codes = model.codec.encode(prompt_wav)
    wav, codes = model.generate_continuation(prompt_wav, 8000, ["epic", ""], duration=0.008, seed=0, return_codes=True)
    assert codes.shape == (2, 4, 8) and wav.shape == (2, 1, 64)
    assert torch.equal(codes[..., :3], prompt_codes)


def test_continuation_resamples_and_mixes_the_prompt(model):
    stereo_at_16k = torch.randn(2, 48) * 0.1
    codes = model.generate_continuation(stereo_at_16k, 16000, duration=0.008, seed=0, return_codes=True)[1]
    assert codes.shape == (1, 4, 8)


def test_progress_callback(model):
    calls = []
    model.generate(["epic"], duration=0.004, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(step, 7) for step in range(1, 8)]


def test_empty_prompt_has_no_condition(model):
    condition, mask = model.conditioner(["", "epic"])
    assert not mask[0].any() and mask[1].any()


def test_conditioner_stays_frozen(model):
    model.conditioner.train()
    assert not model.conditioner.encoder.training
    assert not any(parameter.requires_grad for parameter in model.conditioner.parameters())


@pytest.mark.parametrize("arguments, message", [
    (dict(prompts=[]), "non-empty list"), (dict(prompts="epic"), "non-empty list"), (dict(prompts=["epic", 3]), "string"),
    (dict(duration=0.0), "duration"), (dict(duration=-1.0), "duration"), (dict(duration=math.nan), "duration"),
    (dict(duration=math.inf), "duration"), (dict(top_k=-1), "top_k"), (dict(top_p=1.5), "top_p"),
    (dict(temperature=-0.5), "temperature"), (dict(cfg_coef=math.inf), "cfg_coef"), (dict(seed="zero"), "seed"),
])
def test_bad_generate_arguments_are_refused(model, arguments, message):
    arguments = {"prompts": ["epic"], "duration": 0.004, **arguments}
    with pytest.raises(ValueError, match=message):
        model.generate(**arguments)


def test_a_stride_outside_the_window_is_refused_naming_the_window(model):
    assert model.max_frames == 2048 - 3
    for stride in (0.0, 2.045, 3.0, math.nan, "1"):
        with pytest.raises(ValueError, match=r"stride must be .* shorter than a window \(2\.04 s\)"):
            model.generate(["epic"], duration=0.004, stride=stride)


def test_prompt_longer_than_duration_is_refused(model):
    with pytest.raises(ValueError, match="longer than the audio prompt"):
        model.generate_continuation(torch.zeros(1, 1, 80), 8000, duration=0.005)


def test_a_downbeat_outside_the_audio_prompt_is_refused(model):
    for downbeat in (-0.001, 0.01, math.nan, "0"):
        with pytest.raises(ValueError, match=r"downbeat must be a time within the audio prompt, 0 to 0\.010 s"):
            model.generate_continuation(torch.zeros(1, 1, 80), 8000, duration=0.02, downbeat=downbeat)


def test_unknown_device_is_refused(hf_directory):
    with pytest.raises(ValueError, match="device"):
        MusicGen.from_pretrained(hf_directory, device="tpu7")


def test_directory_of_neither_layout_names_the_expected_files(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="config.yaml.*lm.safetensors.*config.json.*model.safetensors"):
        MusicGen.from_pretrained(tmp_path)


def test_missing_default_checkpoint_names_its_path(tmp_path, monkeypatch):
    absent = tmp_path / "checkpoints" / "default"
    monkeypatch.setattr("musicgen.api.DEFAULT_CHECKPOINT", absent)
    with pytest.raises(FileNotFoundError, match=f"{absent} \\(the embedded default model is not there"):
        MusicGen.from_pretrained()
