"""The MusicGen melody family against transformers: small random MusicgenMelodyForConditionalGeneration models built and
saved here; chroma through the feature extractor on test_chroma's torchaudio stand-in."""
from __future__ import annotations

import math
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
import transformers
from test_chroma import notes, on_stand_in
from test_musicgen_hf import PROMPTS, SHAPES, build_hf_musicgen, tiny_tokenizer
from test_speed_paths import GraphCounter
from transformers import (
    EncodecConfig,
    MusicgenMelodyConfig,
    MusicgenMelodyDecoderConfig,
    MusicgenMelodyForConditionalGeneration,
    T5Config,
)

from musicgen import MusicGen
from musicgen.config import LMConfig
from musicgen.hf import read_hf_weights
from musicgen.hf_melody import lm_from_hf_melody, read_melody_config
from musicgen.lm import LM
from musicgen.long_form import plan_windows
from musicgen.melody import Melody

transformers.logging.set_verbosity_error()

RATE = 8000  # the tiny codecs' sample rate, at which the melodies are given
FRAMES = 12
GREEDY = {"use_sampling": False, "cfg_coef": 3.0}
# k4: chroma and text projected (12 and 32 -> 48), the chroma tiled (6 frames -> 16); k2: neither projected (both
# 32 wide, the identity), the chroma cut (6 frames -> 4).
MELODY_SHAPES = {"k4": {"num_chroma": 12, "chroma_length": 16}, "k2": {"num_chroma": 32, "chroma_length": 4}}
CHROMA_HOPS = {"k4": 4096, "k2": 2048}  # k2's saved with its model: our loader reads it from preprocessor_config.json


@pytest.fixture
def feature_extractor(monkeypatch):
    return on_stand_in(monkeypatch)


def build_hf_melody(path: Path, shape: str = "k4", *, max_positions: int = 2048,
                    audio_channels: int = 1) -> MusicgenMelodyForConditionalGeneration:
    """Save a random MusicgenMelodyForConditionalGeneration and its tokenizer to path, its decoder weights and
    projections drawn wide enough (std 0.2, 0.5) for the text and the melody to steer the codes; with
    audio_channels=2 a stereo-melody one (twice the codec's codebooks, left and right interleaved)."""
    torch.manual_seed(1)
    sizes, tokenizer = SHAPES[shape], tiny_tokenizer()
    card = sizes["decoder"]["vocab_size"]
    decoder_sizes = {**sizes["decoder"], "num_codebooks": sizes["decoder"]["num_codebooks"] * audio_channels}
    config = MusicgenMelodyConfig(
        text_encoder=T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4).to_dict(),
        audio_encoder=EncodecConfig(audio_channels=1, num_filters=4, hidden_size=16, normalize=False, num_lstm_layers=1,
                                    **sizes["encodec"]).to_dict(),
        decoder=MusicgenMelodyDecoderConfig(pad_token_id=card, bos_token_id=card, max_position_embeddings=max_positions,
                                            audio_channels=audio_channels, **decoder_sizes).to_dict(),
        **MELODY_SHAPES[shape])
    model = MusicgenMelodyForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("decoder.") and "layer_norm" not in name:
                parameter.normal_(std=0.2)
            elif name.startswith(("enc_to_dec_proj.", "audio_enc_to_dec_proj.")):
                parameter.normal_(std=0.5)
        for level in model.audio_encoder.quantizer.layers:  # codebooks left at zero by transformers: make codes audible
            level.codebook.embed.normal_()
            level.codebook.embed_avg.copy_(level.codebook.embed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


def melodies() -> list[torch.Tensor | None]:
    """Three melodies [1, N] of different lengths at RATE, the last none."""
    return [notes(3.0, RATE, seed=10), notes(1.2, RATE, seed=11), None]


def hf_chroma(extractor, wavs: list[torch.Tensor | None]) -> torch.Tensor:
    """transformers' chroma [B, T, bins] of wavs ([1, N] at RATE; None: silence, padded to the others' length)."""
    audio = [(torch.zeros(1, 1) if wav is None else wav)[0].numpy() for wav in wavs]
    return extractor(audio, sampling_rate=RATE, return_tensors="pt").input_features


def hf_melody_greedy(model: MusicgenMelodyForConditionalGeneration, prompts: list[str], chroma: torch.Tensor | None,
                     frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' greedy CFG 3 generation on chroma [B, T, bins] (None: none given): codes [B, K, T] as they go to
    the audio decoder (a stereo model decodes its left codebooks, then its right: interleaved back here), and the
    audio [B, C, N]."""
    inputs = tiny_tokenizer()(prompts, padding=True, return_tensors="pt")
    extra = {} if chroma is None else {"input_features": chroma}
    decoder = model.audio_encoder
    max_delay = model.decoder.num_codebooks // model.decoder.config.audio_channels - 1
    with torch.no_grad(), patch.object(decoder, "decode", wraps=decoder.decode) as decode:
        audio = model.generate(**inputs, **extra, do_sample=False, guidance_scale=3.0,
                               max_new_tokens=frames + max_delay)
    return torch.stack([call.args[0][0] for call in decode.call_args_list], dim=2).flatten(1, 2), audio


def changed(codes: torch.Tensor, other: torch.Tensor) -> float:
    return (codes != other).float().mean().item()


@pytest.mark.parametrize("shape", list(MELODY_SHAPES))
def test_greedy_cfg_with_melodies_matches_transformers(tmp_path, feature_extractor, shape):
    reference = build_hf_melody(tmp_path, shape)
    extractor = feature_extractor(sampling_rate=RATE, num_chroma=MELODY_SHAPES[shape]["num_chroma"],
                                  hop_length=CHROMA_HOPS[shape])
    if shape == "k2":
        extractor.save_pretrained(tmp_path)
    chroma = hf_chroma(extractor, melodies())
    codes_ref, audio_ref = hf_melody_greedy(reference, PROMPTS, chroma, FRAMES)
    model = MusicGen.from_pretrained(tmp_path, device="cpu")
    assert model.config.chroma.hop_length == CHROMA_HOPS[shape]
    audio, codes = model.generate_with_chroma(PROMPTS, melodies(), RATE, duration=FRAMES / model.frame_rate,
                                              return_codes=True, **GREEDY)
    assert codes.shape == codes_ref.shape == (3, SHAPES[shape]["decoder"]["num_codebooks"], FRAMES)
    assert torch.equal(codes, codes_ref)
    assert audio.shape == audio_ref.shape
    assert (audio - audio_ref).abs().max() < 1e-3


@pytest.mark.parametrize("shape", list(MELODY_SHAPES))
def test_stereo_melody_matches_transformers(tmp_path, feature_extractor, shape):
    """musicgen-stereo-melody's layout: the melody decoder predicting L0 R0 L1 R1 ..., each half decoded alone."""
    reference = build_hf_melody(tmp_path, shape, audio_channels=2)
    extractor = feature_extractor(sampling_rate=RATE, num_chroma=MELODY_SHAPES[shape]["num_chroma"],
                                  hop_length=CHROMA_HOPS[shape])
    if shape == "k2":
        extractor.save_pretrained(tmp_path)
    codes_ref, audio_ref = hf_melody_greedy(reference, PROMPTS, hf_chroma(extractor, melodies()), FRAMES)
    model = MusicGen.from_pretrained(tmp_path, device="cpu")
    audio, codes = model.generate_with_chroma(PROMPTS, melodies(), RATE, duration=FRAMES / model.frame_rate,
                                              return_codes=True, **GREEDY)
    assert codes.shape == codes_ref.shape == (3, 2 * SHAPES[shape]["decoder"]["num_codebooks"], FRAMES)
    assert torch.equal(codes, codes_ref)
    assert audio.shape == audio_ref.shape == (3, 2, audio.shape[-1])
    assert (audio - audio_ref).abs().max() < 1e-3 and not torch.equal(audio[:, 0], audio[:, 1])


def test_text_alone_is_no_melody_as_in_transformers(tmp_path):
    reference = build_hf_melody(tmp_path, "k4")
    codes_ref, _ = hf_melody_greedy(reference, PROMPTS, None, FRAMES)
    model = MusicGen.from_pretrained(tmp_path, device="cpu")
    _, codes = model.generate(PROMPTS, duration=FRAMES / model.frame_rate, return_codes=True, **GREEDY)
    assert torch.equal(codes, codes_ref)
    _, without = model.generate_with_chroma(PROMPTS, [None] * 3, RATE, duration=FRAMES / model.frame_rate,
                                            return_codes=True, **GREEDY)
    assert torch.equal(without, codes)


def test_the_prompt_and_the_melody_each_steer_the_tokens(tmp_path):
    build_hf_melody(tmp_path, "k4")
    model = MusicGen.from_pretrained(tmp_path, device="cpu")

    def codes_of(prompts, wavs):
        return model.generate_with_chroma(prompts, wavs, RATE, duration=24 / model.frame_rate, return_codes=True,
                                          **GREEDY)[1]

    codes = codes_of(PROMPTS, melodies())
    other_melody = codes_of(PROMPTS, [notes(3.0, RATE, seed=12), *melodies()[1:]])
    other_prompt = codes_of(["slow guitar", *PROMPTS[1:]], melodies())
    assert changed(codes[0], other_melody[0]) > 0.5 and changed(codes[0], other_prompt[0]) > 0.5
    assert torch.equal(codes[1:], other_melody[1:]), "the same melody lengths: the other rows are unchanged"
    assert changed(codes[0], codes_of(PROMPTS[:1], [None])[0]) > 0.5, "a melody differs from none"


def test_a_compiled_decode_reads_the_prefix_from_the_cache(tmp_path):
    torch._dynamo.reset()
    build_hf_melody(tmp_path, "k4")
    model = MusicGen.from_pretrained(tmp_path, device="cpu")

    def codes_of():
        return model.generate_with_chroma(PROMPTS, melodies(), RATE, duration=FRAMES / model.frame_rate,
                                          return_codes=True, **GREEDY)[1]

    expected = codes_of()
    counter = GraphCounter()
    model.lm.compile_decode(mode=None, backend=counter)
    assert torch.equal(codes_of(), expected) and counter.graphs == 1


def test_teacher_forcing_logits_match_transformers(tmp_path, feature_extractor):
    reference = build_hf_melody(tmp_path, "k4")
    lm = lm_from_hf_melody(read_melody_config(tmp_path), read_hf_weights(tmp_path))
    model = MusicGen.from_pretrained(tmp_path, device="cpu")
    inputs = tiny_tokenizer()(PROMPTS, padding=True, return_tensors="pt")
    chroma = hf_chroma(feature_extractor(sampling_rate=RATE), melodies())
    sequence = torch.randint(0, 33, (3, 4, 9))
    with torch.no_grad():
        expected = reference(**inputs, input_features=chroma, decoder_input_ids=sequence.reshape(-1, 9)).logits
        condition, mask = model.conditioner(PROMPTS)
        logits = lm(sequence, condition, mask, chroma=chroma)
    assert torch.allclose(logits, expected.view(3, 4, -1, 32)[:, :, -9:], atol=1e-5)


def test_continuation_and_long_form_run_on_a_melody_model(tmp_path, feature_extractor):
    build_hf_melody(tmp_path, "k4", max_positions=20)
    model = MusicGen.from_pretrained(tmp_path, device="cpu")
    assert model.max_frames == 17
    prompt_wav = model.generate(PROMPTS[:2], duration=5 / model.frame_rate, **GREEDY)
    _, continued = model.generate_continuation(prompt_wav, RATE, PROMPTS[:2], duration=30 / model.frame_rate,
                                               return_codes=True, **GREEDY)
    assert continued.shape == (2, 4, 30)
    assert torch.equal(continued[..., :5], torch.cat([model.codec.encode(clip[None]) for clip in prompt_wav]))
    wav, codes = model.generate_with_chroma(PROMPTS, melodies(), RATE, duration=40 / model.frame_rate,
                                            return_codes=True, **GREEDY)
    assert codes.shape == (3, 4, 40) and wav.shape == (3, 1, 40 * model.codec.hop_length)
    assert len(set(codes[0, 0].tolist())) > 1


def test_long_form_windows_follow_the_melody_as_audiocraft(tmp_path, feature_extractor):
    """Each window's chroma is transformers' of the melody read from the window's first sample on for a whole window,
    looping back to its start (audiocraft's MusicGen._generate_tokens)."""
    build_hf_melody(tmp_path, "k4", max_positions=20)
    model = MusicGen.from_pretrained(tmp_path, device="cpu")
    windows = plan_windows(0, 40, model.max_frames, 10)
    melody = Melody.prepare(melodies(), RATE, prompts=3, sample_rate=RATE, settings=model.config.chroma, bins=12,
                            hop_length=model.codec.hop_length, window_frames=model.max_frames)
    length = model.max_frames * model.codec.hop_length
    for window, chroma in zip(windows, melody.window_chromas(windows), strict=True):
        looped = [None if wav is None else wav[:, (window.start * model.codec.hop_length + torch.arange(length))
                                                  % wav.shape[-1]] for wav in melodies()]
        assert torch.equal(chroma, hf_chroma(feature_extractor(sampling_rate=RATE), looped))


@pytest.mark.parametrize(("cross_attention", "chroma_stride"), [(True, 0.0), (False, 0.0), (True, 2.5), (False, 2.5)])
@pytest.mark.parametrize("position_encoding", ["sinusoidal", "rope"])
def test_cached_decoding_after_a_prefix_matches_teacher_forcing(cross_attention, chroma_stride, position_encoding):
    """Our own LMs may cross-attend to the text and take a chroma prefix too (or, with chroma_stride, a chroma summed
    with the steps' inputs): prefill writes the prefix and the first steps into the cache, decode goes on from there,
    and both give teacher forcing's logits."""
    torch.manual_seed(0)
    lm = LM(LMConfig(num_codebooks=3, cardinality=16, dim=32, num_heads=4, num_layers=2, ffn_dim=64, condition_dim=24,
                     max_positions=64, position_encoding=position_encoding, cross_attention=cross_attention,
                     chroma_bins=12, chroma_frames=5, chroma_stride=chroma_stride)).eval()
    sequence = torch.randint(0, 17, (2, 3, 10))
    condition, mask = torch.randn(2, 4, 24), torch.tensor([[True] * 4, [True, True, False, False]])
    chroma = torch.eye(12)[torch.randint(12, (2, 3))]
    with torch.no_grad():
        expected = lm(sequence, condition, mask, chroma=chroma)
        memory = lm.memory(condition, mask, chroma=chroma)
        assert memory.prefix_length == (0 if chroma_stride else 5) + (0 if cross_attention else 4)
        lm.setup_caches(2, 10, memory.prefix_length)
        steps = [lm.prefill(sequence[..., :4], memory)]
        steps += [lm.decode(sequence[..., step:step + 1], torch.tensor([step]), memory, step + 1)
                  for step in range(4, 10)]
        lm.clear_caches()
        other_melody = lm(sequence, condition, mask, chroma=chroma.roll(1, dims=-1))
    assert expected.shape == (2, 3, 10, 16)
    assert torch.allclose(torch.stack(steps, dim=2), expected[:, :, 3:], atol=1e-5)
    assert (other_melody - expected).abs().max() > 1e-5, "the chroma reaches the logits"


def test_bad_melodies_are_refused(tmp_path):
    build_hf_melody(tmp_path / "melody", "k4")
    model = MusicGen.from_pretrained(tmp_path / "melody", device="cpu")
    tune = notes(1.0, RATE, seed=13)

    def refused(match: str, wavs, sample_rate: int = RATE, prompts: list[str] = PROMPTS[:2]) -> None:
        with pytest.raises(ValueError, match=match):
            model.generate_with_chroma(prompts, wavs, sample_rate, duration=4 / model.frame_rate)

    refused("melody 1 is silent; give None", [tune, torch.zeros(1, RATE)])
    refused("melody 0 is 0.013 s long, shorter than one chroma frame", [tune[:, :100], None])
    refused("melody 1 has samples that are not finite", [tune, tune.clone().index_fill_(1, torch.tensor([5]), math.nan)])
    for rate in (0, -RATE, float(RATE), True):
        refused("melody_sample_rate must be a positive integer", [tune, None], rate)
    refused("got 2 melodies for 3 prompts; expected one each", [tune, None], prompts=PROMPTS)
    refused("melody_wavs must be a tensor", tune)
    refused("melody 0 must be a float tensor", [tune[0], None])
    refused("melody 0 must be a float tensor", [(tune * 100).long(), None])
    build_hf_musicgen(tmp_path / "plain")
    plain = MusicGen.from_pretrained(tmp_path / "plain", device="cpu")
    with pytest.raises(ValueError, match="not conditioned on melodies"):
        plain.generate_with_chroma(PROMPTS[:1], [tune], RATE)
    with pytest.raises(ValueError, match="got a chroma for an LM without melody conditioning"):
        plain.lm.memory(torch.zeros(1, 2, 32), torch.ones(1, 2, dtype=torch.bool), chroma=torch.zeros(1, 3, 12))
    with pytest.raises(ValueError, match="needs both lm.chroma_bins and lm.chroma_frames"):
        LMConfig(chroma_bins=12)


def test_time_aligned_chroma_reaches_each_step_at_its_time():
    """With chroma_stride each step's input is summed with the chroma row of the frame it predicts (row (s + 1) / 2.5,
    rounded, here): a change of row 2 leaves the logits of steps 0-2 as they were and changes step 3's (the first to
    predict a frame of row 2) and every later one's through attention; rows past the chroma's end repeat the last."""
    torch.manual_seed(0)
    sizes = dict(num_codebooks=3, cardinality=16, dim=32, num_heads=4, num_layers=2, ffn_dim=64, condition_dim=24,
                 max_positions=64, chroma_bins=12, chroma_frames=5)
    lm = LM(LMConfig(**sizes, chroma_stride=2.5)).eval()
    sequence = torch.randint(0, 17, (2, 3, 16))
    condition, mask = torch.randn(2, 4, 24), torch.ones(2, 4, dtype=torch.bool)
    chroma = torch.eye(12)[torch.randint(12, (2, 5))]
    changed = chroma.clone()
    changed[:, 2] = changed[:, 2].roll(3, dims=-1)
    last_changed = chroma.clone()
    last_changed[:, 4] = last_changed[:, 4].roll(3, dims=-1)
    with torch.no_grad():
        expected = lm(sequence, condition, mask, chroma=chroma)
        moved = (lm(sequence, condition, mask, chroma=changed) - expected).abs().amax(dim=(0, 1, 3))
        moved_at_end = (lm(sequence, condition, mask, chroma=last_changed) - expected).abs().amax(dim=(0, 1, 3))
    assert torch.all(moved[:3] == 0) and torch.all(moved[3:] > 1e-5), moved
    first_of_last_row = 8  # (8 + 1) / 2.5 = 3.6 rounds to 4: steps 8 .. 15 all read row 4, the last
    assert torch.all(moved_at_end[:first_of_last_row] == 0) and torch.all(moved_at_end[first_of_last_row:] > 1e-5)
    assert lm.memory(condition, mask, chroma=chroma).prefix_length == 0
    with pytest.raises(ValueError, match="chroma_stride sums each step's input"):
        LMConfig(**{**sizes, "chroma_bins": 0, "chroma_frames": 0}, chroma_stride=2.5)
    with pytest.raises(ValueError, match="chroma_stride must be a finite number"):
        LMConfig(**sizes, chroma_stride=-1.0)