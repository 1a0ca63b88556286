"""The stereo MusicGen family against transformers: small random stereo models (decoder.audio_channels=2) built and
saved here, their codes (L0 R0 L1 R1 ...) and audio [B, 2, N] compared; long-form, streaming, downmix, the CLI."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import soundfile
import torch
from test_musicgen_hf import (
    PROMPTS,
    SHAPES,
    build_hf_musicgen,
    hf_greedy,
    tiny_tokenizer,
)
from transformers import MusicgenForConditionalGeneration

from codec import Codec
from codec.stereo import STEREO_FILE, InterleavedStereoCodec, load_codec
from musicgen import MusicGen
from musicgen.cli import main as generate_main

FRAMES = 12
WINDOW = 13
GREEDY = {"use_sampling": False, "cfg_coef": 3.0}


def build_hf_stereo(path: Path, shape: str = "k4") -> MusicgenForConditionalGeneration:
    """A random stereo MusicGen saved to path; its text-to-decoder projection (where the shape has one) drawn as wide
    as the decoder's weights, so that the text steers the codes (transformers' std 0.02 leaves them all but unsteered)."""
    model = build_hf_musicgen(path, shape, audio_channels=2)
    if hasattr(model, "enc_to_dec_proj"):
        with torch.no_grad():
            model.enc_to_dec_proj.weight.normal_(std=0.2)
        model.save_pretrained(path)
    return model


@pytest.fixture(scope="module")
def stereo(tmp_path_factory) -> Path:
    """A stereo k4 model whose LM has 16 positions: WINDOW frames a window (T frames take T + 3 steps with delays
    0, 0, 1, 1, 2, 2, 3, 3), so that long-form runs in windows."""
    path = tmp_path_factory.mktemp("stereo")
    build_hf_stereo(path)
    config = json.loads((path / "config.json").read_text())
    config["decoder"]["max_position_embeddings"] = 16
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def model(stereo) -> MusicGen:
    return MusicGen.from_pretrained(stereo, device="cpu")


@pytest.mark.parametrize("shape", list(SHAPES))
def test_greedy_cfg_generation_matches_transformers(tmp_path, shape):
    reference = build_hf_stereo(tmp_path, shape)
    codes_ref, audio_ref = hf_greedy(reference, PROMPTS, FRAMES)
    model = MusicGen.from_pretrained(tmp_path, device="cpu")
    audio, codes = model.generate(PROMPTS, duration=FRAMES / model.frame_rate, return_codes=True, **GREEDY)
    num_codebooks = 2 * SHAPES[shape]["decoder"]["num_codebooks"]
    assert model.config.pattern.options == {"delays": [k // 2 for k in range(num_codebooks)]}
    assert codes.shape == codes_ref.shape == (len(PROMPTS), num_codebooks, FRAMES)
    assert torch.equal(codes, codes_ref)
    assert audio.shape == audio_ref.shape == (len(PROMPTS), 2, FRAMES * model.codec.hop_length)
    assert (audio - audio_ref).abs().max() < 1e-3
    assert audio_ref.std() > 1e-3 * audio_ref.abs().max()
    assert (codes[:, 0::2] != codes[:, 1::2]).float().mean() > 0.5, "left and right codebooks differ"
    assert not torch.equal(audio[:, 0], audio[:, 1])
    for first, second in itertools.combinations(range(len(PROMPTS)), 2):
        assert (codes[first] != codes[second]).float().mean() > 0.5, "another prompt changes most tokens"


@pytest.mark.parametrize("shape", list(SHAPES))
def test_continuation_of_stereo_audio_matches_transformers(tmp_path, shape):
    reference = build_hf_stereo(tmp_path, shape)
    model = MusicGen.from_pretrained(tmp_path, device="cpu")
    prompt_frames, new_frames = 5, 7
    wav = 0.3 * torch.randn(len(PROMPTS), 2, prompt_frames * model.codec.hop_length,
                            generator=torch.Generator().manual_seed(1))
    audio, codes = model.generate_continuation(wav, model.sample_rate, PROMPTS, return_codes=True,
                                               duration=(prompt_frames + new_frames) / model.frame_rate, **GREEDY)

    decoded = []
    decode = reference.audio_encoder.decode
    reference.audio_encoder.decode = lambda codes, *args, **kwargs: decoded.append(codes) or decode(codes, *args, **kwargs)
    max_delay = reference.decoder.num_codebooks // 2 - 1   # transformers counts the steps, not the frames
    with torch.no_grad():
        audio_ref = reference.generate(**tiny_tokenizer()(PROMPTS, padding=True, return_tensors="pt"), input_values=wav,
                                       do_sample=False, guidance_scale=3.0, max_new_tokens=new_frames + max_delay)
    codes_ref = torch.stack([channel[0] for channel in decoded], dim=2).flatten(1, 2)
    assert codes.shape == (len(PROMPTS), reference.decoder.num_codebooks, prompt_frames + new_frames)
    assert torch.equal(codes, codes_ref)
    assert torch.equal(codes[..., :prompt_frames], model.codec.encode(wav))   # the prompt's frames are kept
    assert audio.shape == audio_ref.shape and (audio - audio_ref).abs().max() < 1e-3


def test_the_codec_encodes_and_decodes_each_channel_as_transformers_does(tmp_path):
    reference = build_hf_stereo(tmp_path, "k2").audio_encoder
    codec = MusicGen.from_pretrained(tmp_path, device="cpu").codec
    wav = 0.3 * torch.randn(2, 2, 40 * codec.hop_length, generator=torch.Generator().manual_seed(2))
    codes = codec.encode(wav)
    with torch.no_grad():
        left, right = (reference.encode(wav[:, channel:channel + 1]).audio_codes[0] for channel in (0, 1))
        audio_ref = torch.cat([reference.decode(channel[None], [None]).audio_values for channel in (left, right)], 1)
    assert isinstance(codec, InterleavedStereoCodec) and (codec.channels, codec.num_codebooks) == (2, 4)
    assert torch.equal(codes[:, 0::2], left) and torch.equal(codes[:, 1::2], right)
    assert (codec.decode(codes) - audio_ref).abs().max() < 1e-4
    with pytest.raises(ValueError, match=r"expected stereo wav \[B, 2, N\]"):
        codec.encode(wav[:, :1])
    with pytest.raises(ValueError, match=r"expected codes \[B, 4, T\]"):
        codec.decode(codes[:, :2])
    with pytest.raises(ValueError, match="wraps a mono codec"):
        InterleavedStereoCodec(codec)


def test_saved_in_this_projects_layout_it_loads_back_stereo(model, tmp_path):
    model.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "codec" / STEREO_FILE).read_text()) == {"layout": "interleaved",
                                                                                    "channels": 2}
    assert isinstance(Codec.from_pretrained(tmp_path / "saved" / "codec"), Codec)   # the mono codec alone
    loaded = MusicGen.from_pretrained(tmp_path / "saved", device="cpu")
    assert loaded.config.pattern == model.config.pattern
    expected = model.generate(PROMPTS[:2], duration=FRAMES / model.frame_rate, return_codes=True, **GREEDY)
    got = loaded.generate(PROMPTS[:2], duration=FRAMES / model.frame_rate, return_codes=True, **GREEDY)
    assert torch.equal(got[1], expected[1]) and torch.allclose(got[0], expected[0], atol=1e-5)
    (tmp_path / "saved" / "codec" / STEREO_FILE).write_text(json.dumps({"layout": "side by side"}))
    with pytest.raises(ValueError, match="must hold"):
        load_codec(tmp_path / "saved" / "codec")


def test_long_form_continuation_and_streaming_give_stereo(model):
    assert model.max_frames == WINDOW
    frames = 2 * WINDOW + 5
    long = model.generate(PROMPTS[:2], duration=frames / model.frame_rate, seed=0)
    assert long.shape == (2, 2, frames * model.codec.hop_length)
    mono_prompt = 0.3 * torch.randn(1, 3 * model.codec.hop_length, generator=torch.Generator().manual_seed(3))
    continued = model.generate_continuation(mono_prompt, model.sample_rate, ["epic"], duration=frames / model.frame_rate,
                                            seed=0)
    assert continued.shape == (1, 2, frames * model.codec.hop_length)   # a mono prompt is played on both channels
    chunks = list(model.generate_stream(PROMPTS[:2], frames / model.frame_rate, 8 / model.frame_rate, seed=0))
    assert all(chunk.shape[:2] == (2, 2) for chunk in chunks) and len(chunks) > 2
    assert torch.allclose(torch.cat(chunks, dim=-1), long, atol=1e-4, rtol=0)


def test_channels_1_downmixes_and_other_values_are_refused(model, tmp_path):
    duration = 6 / model.frame_rate
    both = model.generate(PROMPTS, duration, seed=0)
    assert torch.equal(model.generate(PROMPTS, duration, seed=0, channels=2), both)
    mixed = model.generate(PROMPTS, duration, seed=0, channels=1)
    assert mixed.shape == (len(PROMPTS), 1, both.shape[-1]) and torch.allclose(mixed, both.mean(1, keepdim=True))
    prompt = torch.randn(2, 2, 2 * model.codec.hop_length, generator=torch.Generator().manual_seed(4))
    continued = model.generate_continuation(prompt, model.sample_rate, duration=duration, seed=0)
    assert torch.allclose(model.generate_continuation(prompt, model.sample_rate, duration=duration, seed=0, channels=1),
                          continued.mean(1, keepdim=True))
    chunks = list(model.generate_stream(PROMPTS, duration, 2 / model.frame_rate, seed=0, channels=1))
    assert all(chunk.shape[1] == 1 for chunk in chunks)
    assert torch.allclose(torch.cat(chunks, -1), mixed, atol=1e-4, rtol=0)

    steps = []
    for bad in (0, 3, True, 1.0, "1"):
        with pytest.raises(ValueError, match=r"channels must be None \(the model's own, 2\) or 1"):
            model.generate(PROMPTS, duration, channels=bad, progress=lambda done, total: steps.append(done))
        with pytest.raises(ValueError, match="channels must be"):
            model.generate_stream(PROMPTS, duration, channels=bad)
        with pytest.raises(ValueError, match="channels must be"):
            model.generate_continuation(prompt, model.sample_rate, duration=duration, channels=bad)
    assert steps == [], "nothing is generated for a bad channels value"
    build_hf_musicgen(tmp_path / "mono", "k2")
    mono = MusicGen.from_pretrained(tmp_path / "mono", device="cpu")
    assert mono.generate(PROMPTS[:1], 0.002, channels=1).shape[1] == 1
    with pytest.raises(ValueError, match=r"channels must be None \(the model's own, 1\) or 1, got 2"):
        mono.generate(PROMPTS[:1], 0.002, channels=2)


def test_musicgen_generate_writes_two_channel_files(stereo, tmp_path, capsys):
    assert generate_main(["--text", "epic", "--duration", "0.01", "--model", str(stereo), "--out-dir", str(tmp_path),
                          "--seed", "1", "--quiet"]) == 0
    info = soundfile.info(str(tmp_path / "epic.wav"))
    assert (info.channels, info.frames) == (2, 10 * 8)
    assert json.loads(capsys.readouterr().out)["path"].endswith("epic.wav")


def test_a_stereo_decoder_with_an_odd_number_of_codebooks_is_refused(tmp_path):
    build_hf_stereo(tmp_path, "k2")
    config = json.loads((tmp_path / "config.json").read_text())
    config["decoder"]["num_codebooks"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="interleaves the two channels' codebooks: expected an even num_codebooks, got 3"):
        MusicGen.from_pretrained(tmp_path, device="cpu")
