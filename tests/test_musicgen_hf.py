"""Parity with transformers' MusicGen: small random-initialised models built and saved here, loaded by both sides."""
from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch
import transformers
from transformers import (
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
    T5Tokenizer,
)

from musicgen import MusicGen
from musicgen.hf import conditioner_from_hf, lm_from_hf, read_hf_config, read_hf_weights
from musicgen.text_encoders import encoder_from_config

transformers.logging.set_verbosity_error()

WORDS = "lo fi piano with soft drums epic orchestral slow guitar bass".split()
PROMPTS = ["lo-fi piano with soft drums", "epic", "slow bass guitar"]

# Two decoder shapes: with a condition projection (T5 width 32 != 48) and without one (32 == 32).
SHAPES = {
    "k4": dict(decoder=dict(vocab_size=32, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, ffn_dim=96,
                            num_codebooks=4),
               encodec=dict(sampling_rate=8000, upsampling_ratios=[4, 2], codebook_size=32, target_bandwidths=[20.0])),
    "k2": dict(decoder=dict(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, ffn_dim=64,
                            num_codebooks=2),
               encodec=dict(sampling_rate=8000, upsampling_ratios=[4, 4], codebook_size=64, target_bandwidths=[6.0])),
}


def tiny_tokenizer() -> T5Tokenizer:
    """A T5 (unigram) tokenizer over letters and a few words, built offline."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(letter, -3.0) for letter in string.ascii_lowercase + "-"] + [("▁" + word, -1.0) for word in WORDS]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_hf_musicgen(path: Path, shape: str = "k4", seed: int = 0, *,
                      audio_channels: int = 1) -> MusicgenForConditionalGeneration:
    """Save a random-initialised MusicgenForConditionalGeneration and its tokenizer to path (the HF layout); with
    audio_channels=2 a stereo one, whose decoder has twice the codec's codebooks (left and right interleaved)."""
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    sizes = SHAPES[shape]
    card = sizes["decoder"]["vocab_size"]
    text = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    audio = EncodecConfig(audio_channels=1, num_filters=4, hidden_size=16, normalize=False, num_lstm_layers=1,
                          **sizes["encodec"])
    decoder = MusicgenDecoderConfig(pad_token_id=card, bos_token_id=card, audio_channels=audio_channels,
                                    **{**sizes["decoder"],
                                       "num_codebooks": sizes["decoder"]["num_codebooks"] * audio_channels})
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
    model = MusicgenForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, parameter in model.decoder.named_parameters():  # weights large enough for the text to steer the codes
            if "layer_norm" not in name:
                parameter.normal_(std=0.2)
        for level in model.audio_encoder.quantizer.layers:  # transformers leaves codebooks at zero: make codes audible
            level.codebook.embed.normal_()
            level.codebook.embed_avg.copy_(level.codebook.embed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


def hf_greedy(model: MusicgenForConditionalGeneration, prompts: list[str], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' greedy CFG 3 generation: (codes [B, K, T], audio [B, C, N]); the codes are read on their way to
    decode (a stereo model decodes its left codebooks, then its right: interleaved back here)."""
    inputs = tiny_tokenizer()(prompts, padding=True, return_tensors="pt")
    decoded = []
    decode = model.audio_encoder.decode

    def recording_decode(codes, *args, **kwargs):
        decoded.append(codes)
        return decode(codes, *args, **kwargs)

    model.audio_encoder.decode = recording_decode
    max_delay = model.decoder.num_codebooks // model.decoder.config.audio_channels - 1
    with torch.no_grad():
        audio = model.generate(**inputs, do_sample=False, guidance_scale=3.0, max_new_tokens=frames + max_delay)
    return torch.stack([codes[0] for codes in decoded], dim=2).flatten(1, 2), audio


@pytest.mark.parametrize("shape", list(SHAPES))
def test_greedy_cfg_generation_matches_transformers(tmp_path, shape):
    reference = build_hf_musicgen(tmp_path, shape)
    frames = 12
    codes_ref, audio_ref = hf_greedy(reference, PROMPTS, frames)
    model = MusicGen.from_pretrained(tmp_path, device="cpu")
    audio, codes = model.generate(PROMPTS, duration=frames / model.frame_rate, use_sampling=False, cfg_coef=3.0,
                                  return_codes=True)
    assert codes.shape == codes_ref.shape == (len(PROMPTS), SHAPES[shape]["decoder"]["num_codebooks"], frames)
    assert torch.equal(codes, codes_ref)
    _, rotated = model.generate(PROMPTS[1:] + PROMPTS[:1], duration=frames / model.frame_rate, use_sampling=False,
                                cfg_coef=3.0, return_codes=True)     # every row's prompt replaced by another
    assert (rotated != codes).float().mean() > 0.5, "the prompts should steer most of the codes"
    assert audio.shape == audio_ref.shape
    assert (audio - audio_ref).abs().max() < 1e-3
    assert audio_ref.std() > 1e-3 * audio_ref.abs().max() and not torch.equal(audio[0], audio[1])


def test_teacher_forcing_logits_match_transformers(tmp_path):
    reference = build_hf_musicgen(tmp_path, "k4")
    config, state = read_hf_config(tmp_path), read_hf_weights(tmp_path)
    lm = lm_from_hf(config, state)
    conditioner = conditioner_from_hf(encoder_from_config(config.text_encoder.to_dict()), state, tmp_path)
    inputs = tiny_tokenizer()(PROMPTS, padding=True, return_tensors="pt")
    sequence = torch.randint(0, 33, (len(PROMPTS), 4, 9))
    with torch.no_grad():
        expected = reference(**inputs, decoder_input_ids=sequence.reshape(-1, 9)).logits.view(len(PROMPTS), 4, 9, 32)
        condition, mask = conditioner(PROMPTS)
        logits = lm(sequence, condition, mask)
    assert torch.allclose(logits, expected, atol=1e-5)


def test_sharded_checkpoint_loads_the_same_weights(tmp_path):
    model = build_hf_musicgen(tmp_path / "single")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    tiny_tokenizer().save_pretrained(tmp_path / "sharded")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    single = MusicGen.from_pretrained(tmp_path / "single", device="cpu")
    sharded = MusicGen.from_pretrained(tmp_path / "sharded", device="cpu")
    for name, tensor in single.lm.state_dict().items():
        assert torch.equal(tensor, sharded.lm.state_dict()[name]), name


def test_unsupported_hf_models_are_refused(tmp_path):
    build_hf_musicgen(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "bark"}))
    with pytest.raises(ValueError, match="not a MusicGen config.*'musicgen_melody' for a melody model"):
        MusicGen.from_pretrained(tmp_path, device="cpu")
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "musicgen_melody"}))
    with pytest.raises(ValueError, match="model_type 'musicgen_melody' but its decoder has cross-attention"):
        MusicGen.from_pretrained(tmp_path, device="cpu")
    config["decoder"]["audio_channels"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"not a valid MusicGen config.* 1 \(mono\) or 2 \(stereo\) audio channels, got 3"):
        MusicGen.from_pretrained(tmp_path, device="cpu")
