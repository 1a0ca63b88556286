"""audiocraft's calls on a tiny random MusicGen saved here, and audio_write's files read back."""
from __future__ import annotations

import math
import warnings

import pytest
import soundfile
import torch
from codec_audio import sine
from tiny_models import TINY_SAMPLE_RATE, save_tiny_musicgen

from musicgen import MusicGen, audio_write
from musicgen.loudness import integrated_loudness

RATE = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_musicgen(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def model(model_dir):
    return MusicGen.get_pretrained(str(model_dir), device="cpu")


def test_generation_params_become_the_defaults_of_later_calls(model):
    assert model.audio_channels == 1
    explicit = model.generate(["epic"], duration=0.08, stride=0.02, seed=1, top_k=5, cfg_coef=2.0, return_codes=True)
    default_stride = model.generate(["epic"], duration=0.08, seed=1, top_k=5, cfg_coef=2.0, return_codes=True)
    model.set_generation_params(top_k=5, cfg_coef=2.0, duration=0.08, extend_stride=0.02)
    assert model.duration == 0.08 and model.extend_stride == 0.02
    assert (model.config.generation.top_k, model.config.generation.temperature) == (5, 1.0)
    wav, tokens = model.generate(["epic"], seed=1, return_tokens=True)
    assert wav.shape == (1, 1, 80 * TINY_SAMPLE_RATE // 1000) and torch.equal(tokens, explicit[1])
    assert not torch.equal(tokens, default_stride[1]), "the stride should change the later windows"
    model.set_generation_params(duration=0.01)           # audiocraft's defaults for everything not given
    assert (model.config.generation.top_k, model.config.generation.cfg_coef, model.extend_stride) == (250, 3.0, None)


@pytest.mark.parametrize("arguments, message", [
    ({"cfg_coef_beta": 2.0}, "cfg_coef_beta .* is not supported"),
    ({"two_step_cfg": True}, "two_step_cfg=True is not supported"),
    ({"duration": 0.03, "extend_stride": 0.037}, "stride must be at least one frame .* and shorter than a window"),
    ({"duration": 0.03, "extend_stride": "18"}, "extend_stride must be a number of seconds or None"),
    ({"duration": 0}, "duration must be a finite number of seconds > 0"),
    ({"duration": 0.03, "top_k": -1}, "top_k must be an integer >= 0"),
    ({"duration": 0.03, "top_p": 2.0}, "top_p must be in"),
])
def test_refused_generation_params_change_nothing(model, arguments, message):
    before = model.config.generation
    with pytest.raises(ValueError, match=message):
        model.set_generation_params(**arguments)
    assert model.config.generation is before and model.extend_stride is None


def test_unconditional_generation_is_generation_from_empty_prompts(model):
    model.set_generation_params(duration=0.01)
    torch.manual_seed(0)
    wav, tokens = model.generate_unconditional(2, return_tokens=True)
    torch.manual_seed(0)
    expected_wav, expected = model.generate(["", ""], return_codes=True)
    assert tokens.shape == (2, 4, 10) and torch.equal(tokens, expected) and torch.equal(wav, expected_wav)
    assert model.generate_unconditional(1).shape == (1, 1, 10 * TINY_SAMPLE_RATE // 1000)
    for count in (0, 1.5, True):
        with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
            model.generate_unconditional(count)


def test_descriptions_and_return_tokens_are_prompts_and_return_codes(model):
    wav, tokens = model.generate(descriptions=["epic", None], duration=0.01, seed=2, return_tokens=True)
    expected_wav, expected = model.generate(["epic", ""], duration=0.01, seed=2, return_codes=True)
    assert torch.equal(tokens, expected) and torch.equal(wav, expected_wav)
    with pytest.raises(ValueError, match="give prompts or descriptions .*, not both"):
        model.generate(["epic"], descriptions=["epic"], duration=0.01)
    with pytest.raises(ValueError, match="prompts must be a non-empty list of strings, got 'epic'"):
        model.generate(descriptions="epic", duration=0.01)


def test_continuation_takes_audiocrafts_positional_order_and_keywords(model):
    prompt = torch.from_numpy(sine(440, 0.005, RATE, channels=2).T.copy())    # [2, N] at another rate
    model.set_generation_params(duration=0.02, use_sampling=False)
    wav, tokens = model.generate_continuation(prompt, RATE, ["epic"], progress=False, return_tokens=True)
    _, by_keyword = model.generate_continuation(prompt, prompt_sample_rate=RATE, descriptions=["epic"],
                                                return_tokens=True)
    _, expected = model.generate_continuation(prompt, RATE, ["epic"], duration=0.02, use_sampling=False,
                                              return_codes=True)
    assert wav.shape == (1, 1, 20 * TINY_SAMPLE_RATE // 1000)
    assert torch.equal(tokens, expected) and torch.equal(by_keyword, expected)
    _, unconditional = model.generate_continuation(prompt, RATE, descriptions=[None], return_tokens=True)
    _, empty = model.generate_continuation(prompt, RATE, return_tokens=True)
    assert torch.equal(unconditional, empty)


def read(path):
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(data.T.copy()), rate


def test_audio_write_appends_the_suffix_and_keeps_the_channels(tmp_path):
    stereo = torch.stack([torch.linspace(-0.5, 0.5, 800), torch.full((800,), 0.25)])
    for format in ("wav", "flac", "ogg"):
        path = audio_write(tmp_path / "songs" / "a", stereo, RATE, format)
        assert path == tmp_path / "songs" / f"a.{format}"
        wav, rate = read(path)
        assert rate == RATE and wav.shape == (2, 800)
        tolerance = 0.05 if format == "ogg" else 1 / 2**15
        assert (wav - stereo * 10 ** (-1 / 20) / 0.5).abs().max() <= tolerance   # peak normalised to -1 dBFS
    path = audio_write(str(tmp_path / "mono"), torch.full((800,), 0.1), RATE, normalize=False)
    assert path == tmp_path / "mono.wav" and torch.allclose(read(path)[0], torch.full((1, 800), 0.1), atol=1e-4)
    path = audio_write(tmp_path / "whole.flac", stereo, RATE, "flac", add_suffix=False)
    assert path == tmp_path / "whole.flac" and read(path)[0].shape == (2, 800)


def test_normalisation_strategies(tmp_path):
    loud = torch.from_numpy(sine(440, 1.0, RATE, channels=2).T.copy()) * 3     # a peak of 1.5
    cases = {"peak": 10 ** (-1 / 20), "clip": 10 ** (-1 / 20)}
    for strategy, peak in cases.items():
        wav, _ = read(audio_write(tmp_path / strategy, loud, RATE, strategy=strategy))
        assert abs(wav.abs().max() - peak) < 1e-4
    quiet = loud / 15
    wav, _ = read(audio_write(tmp_path / "peak-down-only", quiet, RATE, normalize=False))
    assert torch.allclose(wav, quiet, atol=1e-4)                      # only scaled when it would clip
    wav, _ = read(audio_write(tmp_path / "rms", quiet, RATE, strategy="rms"))
    assert abs(wav.mean(0).pow(2).mean().sqrt() - 10 ** (-18 / 20)) < 1e-3
    wav, _ = read(audio_write(tmp_path / "loudness", quiet, RATE, strategy="loudness"))
    assert abs(integrated_loudness(wav, RATE) - -14) < 0.01
    wav, _ = read(audio_write(tmp_path / "lufs-20", quiet, RATE, strategy="loudness", loudness_headroom_db=20))
    assert abs(integrated_loudness(wav, RATE) - -20) < 0.01
    silence = torch.zeros(1, RATE)
    for strategy in ("peak", "rms", "loudness"):
        wav, _ = read(audio_write(tmp_path / f"silence-{strategy}", silence, RATE, strategy=strategy))
        assert not wav.any()


def test_clipping_after_loudness_is_warned_and_compressed_with_tanh(tmp_path):
    spiky = torch.zeros(1, RATE)
    spiky[0, ::400] = 0.5                                              # clicks: loud peaks, little loudness
    with pytest.warns(UserWarning, match=r"clipped to \[-1, 1\] after 'loudness' normalisation"):
        wav, _ = read(audio_write(tmp_path / "clicks", spiky, RATE, strategy="loudness"))
    assert wav.abs().max() > 0.999                                     # 16-bit full scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audio_write(tmp_path / "quiet", spiky, RATE, strategy="loudness", log_clipping=False)
        wav, _ = read(audio_write(tmp_path / "tanh", spiky, RATE, strategy="loudness", loudness_compressor=True))
    assert 0.99 < wav.abs().max() < 1


@pytest.mark.parametrize("arguments, error, message", [
    ({"format": "mp3"}, ValueError, r"format must be one of \('wav', 'flac', 'ogg'\)"),
    ({"strategy": "max"}, ValueError, "strategy must be one of"),
    ({"wav": torch.zeros(1, 1, 8)}, ValueError, r"wav must be a float tensor \[C, N\] or \[N\]"),
    ({"wav": torch.zeros(8, dtype=torch.int16)}, ValueError, "wav must be a float tensor"),
    ({"wav": torch.tensor([0.0, math.nan])}, ValueError, "NaN or infinite"),
    ({"wav": torch.zeros(1, 0)}, ValueError, "no samples"),
    ({"sample_rate": 0}, ValueError, "sample_rate must be a positive integer"),
    ({"add_suffix": False}, ValueError, "with add_suffix=False, stem_name must end in .wav"),
    ({"make_parent_dir": False}, FileNotFoundError, "no folder .*missing to write out.wav"),
    ({"strategy": "loudness", "wav": torch.full((1, 1000), 0.5)}, ValueError, "0.4 s blocks; got 0.062 s"),
    ({"peak_clip_headroom_db": math.inf}, ValueError, "peak_clip_headroom_db must be a finite number of dB"),
])
def test_bad_audio_write_arguments_are_refused_and_write_nothing(tmp_path, arguments, error, message):
    given = {"stem_name": tmp_path / "missing" / "out", "wav": torch.zeros(1, 800), "sample_rate": RATE} | arguments
    with pytest.raises(error, match=message):
        audio_write(**given)
    assert not list(tmp_path.iterdir())
