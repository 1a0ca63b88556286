"""Streaming generation: chunks that arrive while the frames are made and join into `generate`'s audio."""
from __future__ import annotations

import pytest
import torch

from codec import Codec, CodecConfig
from musicgen import MusicGen
from musicgen.streaming import SAFETY_FRAMES, Reach, measure_reach, stream_audio

from tiny_models import TINY_FRAME_RATE, TINY_SAMPLE_RATE, save_tiny_musicgen, tiny_istft_codec

PROMPTS = ["an upbeat piano tune", "slow strings"]
SAMPLING = dict(top_k=8, temperature=1.0, cfg_coef=3.0, seed=3)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny model: a SEANet decoder with an LSTM, 37 frames a window."""
    return MusicGen.from_pretrained(save_tiny_musicgen(tmp_path_factory.mktemp("tiny")), device="cpu")


def chunks_of(model: MusicGen, *args, **kwargs) -> list[torch.Tensor]:
    return list(model.generate_stream(*args, **kwargs))


def test_chunks_join_into_generates_audio(model):
    duration, chunk = 30 / TINY_FRAME_RATE, 8 / TINY_FRAME_RATE
    chunks = chunks_of(model, PROMPTS, duration, chunk, **SAMPLING)
    expected = model.generate(PROMPTS, duration, **SAMPLING)
    assert len(chunks) >= 3
    assert all(piece.shape[-1] >= 8 * model.codec.hop_length for piece in chunks[:-1])
    assert torch.allclose(torch.cat(chunks, dim=-1), expected, atol=1e-4, rtol=0)


def test_long_form_streams_across_windows(model):
    duration = 100 / TINY_FRAME_RATE  # three windows of at most 37 frames
    chunks = chunks_of(model, PROMPTS, duration, 10 / TINY_FRAME_RATE, **SAMPLING)
    assert torch.cat(chunks, dim=-1).shape[-1] == 100 * model.codec.hop_length
    assert torch.allclose(torch.cat(chunks, dim=-1), model.generate(PROMPTS, duration, **SAMPLING), atol=1e-4, rtol=0)


def test_continuation_streams_the_prompt_first(model):
    torch.manual_seed(1)
    prompt_wav = 0.3 * torch.randn(2, 1, 12 * model.codec.hop_length)
    kwargs = dict(prompt_wav=prompt_wav, prompt_sample_rate=model.sample_rate, **SAMPLING)
    chunks = chunks_of(model, PROMPTS, 60 / TINY_FRAME_RATE, 5 / TINY_FRAME_RATE, **kwargs)
    expected = model.generate_continuation(prompt_wav, model.sample_rate, PROMPTS, 60 / TINY_FRAME_RATE, **SAMPLING)
    assert torch.allclose(torch.cat(chunks, dim=-1), expected, atol=1e-4, rtol=0)


def test_an_istft_decoder_streams_with_bounded_context(model):
    """The default model's decoder kind: each chunk decodes a stretch, not the clip so far, and still joins exactly."""
    other = MusicGen(model.config, model.lm, model.conditioner, tiny_istft_codec())
    reach = measure_reach(other.codec)
    assert reach.behind is not None and reach.behind < 40 and reach.ahead < 40
    duration = 200 / TINY_FRAME_RATE
    chunks = chunks_of(other, PROMPTS, duration, 16 / TINY_FRAME_RATE, **SAMPLING)
    assert torch.allclose(torch.cat(chunks, dim=-1), other.generate(PROMPTS, duration, **SAMPLING), atol=1e-4, rtol=0)


def test_measured_reach_follows_the_decoder():
    """The istft decoder: a kernel-7 embedding and 2 kernel-7 blocks reach 3 frames each way apiece, and its inverse
    STFT (window 4 hops, centred) one frame behind and two ahead; a causal SEANet decoder without LSTM sees no
    frame ahead; one with an LSTM reaches back to the start."""
    assert measure_reach(tiny_istft_codec()) == Reach(3 * 3 + 1 + SAFETY_FRAMES, 3 * 3 + 2 + SAFETY_FRAMES)
    causal = Codec(CodecConfig(sample_rate=TINY_SAMPLE_RATE, dimension=8, n_filters=2, ratios=[4, 2], lstm_layers=0,
                               causal=True, num_codebooks=2, cardinality=16, kmeans_iters=0)).eval()
    assert measure_reach(causal).ahead == SAFETY_FRAMES
    recurrent = Codec(CodecConfig(sample_rate=TINY_SAMPLE_RATE, dimension=8, n_filters=2, ratios=[4, 2],
                                  lstm_layers=1, num_codebooks=2, cardinality=16, kmeans_iters=0)).eval()
    assert measure_reach(recurrent).behind is None


def test_stream_audio_checks_its_frames():
    codec = tiny_istft_codec()
    codes = torch.randint(32, (1, 4, 10))
    with pytest.raises(ValueError, match="more than the 8 announced"):
        list(stream_audio(codec.decode, [codes], reach=Reach(1, 1), total_frames=8, chunk_frames=2, hop=8))
    with pytest.raises(ValueError, match="ended after 0 of 12 frames"):
        list(stream_audio(codec.decode, [codes], reach=Reach(1, 1), total_frames=12, chunk_frames=20, hop=8))


def test_bad_arguments_fail_at_the_call(model):
    with pytest.raises(ValueError, match="chunk_seconds"):
        model.generate_stream(PROMPTS, 0.02, 0)
    with pytest.raises(ValueError, match="duration"):
        model.generate_stream(PROMPTS, 0)
    with pytest.raises(ValueError, match="prompt"):
        model.generate_stream([], 0.02)


def test_a_raising_progress_callback_stops_and_the_model_generates_again(model):
    steps = []

    def cancel_after_five(done: int, total: int) -> None:
        steps.append(done)
        if done == 5:
            raise KeyboardInterrupt

    stream = model.generate_stream(PROMPTS, 30 / TINY_FRAME_RATE, 4 / TINY_FRAME_RATE, progress=cancel_after_five,
                                   **SAMPLING)
    with pytest.raises(KeyboardInterrupt):
        list(stream)
    assert steps == [1, 2, 3, 4, 5]
    assert torch.allclose(torch.cat(chunks_of(model, PROMPTS, 0.01, 0.004, **SAMPLING), dim=-1),
                          model.generate(PROMPTS, 0.01, **SAMPLING), atol=1e-4, rtol=0)


def test_the_default_models_chunks_join_into_its_audio():
    """The embedded model (inverse-STFT decoder, beat clock): 2 s in chunks of 0.5 s, each decoding its reach only."""
    model = MusicGen.from_pretrained(device="cpu")
    prompts = ["an upbeat piano tune at 120 BPM in A major with drums"]
    chunks = chunks_of(model, prompts, 2.0, 0.5, seed=0)
    assert model.decoder_reach.behind is not None and len(chunks) >= 3
    assert all(piece.shape[-1] >= model.sample_rate // 2 for piece in chunks[:-1])
    assert torch.allclose(torch.cat(chunks, dim=-1), model.generate(prompts, 2.0, seed=0), atol=1e-4, rtol=0)
