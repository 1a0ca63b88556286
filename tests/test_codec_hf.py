"""Published EnCodec weights: small random transformers EncodecModels, saved with save_pretrained,
loaded into our Codec, must give the same codes and the same audio."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import EncodecConfig, EncodecModel

from codec import Codec

CONFIGS = {
    "causal_shortcut_1lstm": dict(use_causal_conv=True, use_conv_shortcut=True, num_lstm_layers=1,
                                  upsampling_ratios=[4, 2], codebook_size=16, num_codebooks=2),
    "noncausal_noshortcut_2lstm": dict(use_causal_conv=False, use_conv_shortcut=False, num_lstm_layers=2,
                                       upsampling_ratios=[3, 2, 2], codebook_size=64, num_codebooks=3),
    "stereo_odd_ratios_constant_pad": dict(audio_channels=2, use_causal_conv=False, num_lstm_layers=1, pad_mode="constant",
                                           upsampling_ratios=[5, 3], num_residual_layers=2, compress=4,
                                           codebook_size=32, num_codebooks=2),
    "musicgen_32khz_layout": dict(use_causal_conv=False, use_conv_shortcut=False, num_lstm_layers=2,
                                  upsampling_ratios=[8, 5, 4,
                                                     4], codebook_size=128, sampling_rate=32000, num_codebooks=4),
}


def build_hf_model(directory, num_codebooks, seed=0, **overrides):
    """A random EncodecModel with num_codebooks codebooks (filled too) saved to `directory`; returns it in eval mode."""
    torch.manual_seed(seed)
    config = EncodecConfig(**{"num_filters": 4, "hidden_size": 8, "sampling_rate": 8000, **overrides})
    kbps_per_codebook = config.frame_rate * config.codebook_nbits / 1000
    config.target_bandwidths = [(num_codebooks + 0.5) * kbps_per_codebook]
    assert config.num_quantizers == num_codebooks
    model = EncodecModel(config).eval()
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.normal_()
            layer.codebook.cluster_size.uniform_(0, 5)
    model.save_pretrained(directory)
    return model


def hf_codes_and_audio(model, wav):
    with torch.no_grad():
        encoded = model.encode(wav, bandwidth=max(model.config.target_bandwidths))
        audio = model.decode(encoded.audio_codes, encoded.audio_scales).audio_values
    assert encoded.audio_codes.shape[0] == 1  # [chunks, B, K, T], one chunk
    return encoded.audio_codes[0], audio


@pytest.mark.parametrize("name", CONFIGS)
def test_codes_and_audio_match_transformers(tmp_path, name):
    model = build_hf_model(tmp_path, **CONFIGS[name])
    codec = Codec.from_pretrained(tmp_path).eval()
    assert codec.num_codebooks == model.config.num_quantizers
    assert codec.hop_length == model.config.hop_length
    wav = torch.randn(2, model.config.audio_channels, 3 * codec.hop_length + 7, generator=torch.Generator().manual_seed(1))
    expected_codes, expected_audio = hf_codes_and_audio(model, wav)
    codes = codec.encode(wav)
    assert codes.dtype == torch.int64
    assert torch.equal(codes, expected_codes)
    assert len(codes.unique()) > 1  # the comparison is not between constant codes
    audio = codec.decode(codes)
    assert audio.shape == expected_audio.shape == (2, model.config.audio_channels, codes.shape[-1] * codec.hop_length)
    assert (audio - expected_audio).abs().max() < 1e-4


def test_weight_norm_folding_keeps_audio(tmp_path):
    model = build_hf_model(tmp_path, **CONFIGS["noncausal_noshortcut_2lstm"])
    codec = Codec.from_pretrained(tmp_path).eval().remove_weight_norm()
    assert codec.config.norm == "none"
    assert not any("parametrizations" in name for name in codec.state_dict())
    wav = torch.randn(1, 1, 200)
    expected_codes, expected_audio = hf_codes_and_audio(model, wav)
    assert torch.equal(codec.encode(wav), expected_codes)
    assert (codec.decode(expected_codes) - expected_audio).abs().max() < 1e-4


def test_published_weight_g_weight_v_names_load(tmp_path):
    """Checkpoints saved before torch's parametrizations (as published) name weight norm weight_g / weight_v."""
    model = build_hf_model(tmp_path, **CONFIGS["causal_shortcut_1lstm"])
    tensors = load_file(tmp_path / "model.safetensors")
    old_names = {name.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): tensor
                 for name, tensor in tensors.items()}
    assert any(name.endswith("weight_g") for name in old_names)
    config = json.loads((tmp_path / "config.json").read_text())
    codec = Codec.from_hf(config, old_names).eval()
    wav = torch.randn(1, 1, 123)
    expected_codes, _ = hf_codes_and_audio(model, wav)
    assert torch.equal(codec.encode(wav), expected_codes)


def test_musicgen_audio_encoder_section(tmp_path):
    """MusicGen keeps the EncodecConfig under `audio_encoder` and the weights under `audio_encoder.`."""
    model = build_hf_model(tmp_path, **CONFIGS["musicgen_32khz_layout"])
    musicgen_tensors = {f"audio_encoder.{name}": tensor for name, tensor in model.state_dict().items()}
    section = model.config.to_dict()
    prefix = "audio_encoder."
    codec = Codec.from_hf(section, {name[len(prefix):]: t for name,
                                    t in musicgen_tensors.items() if name.startswith(prefix)})
    assert codec.sample_rate == 32000 and codec.frame_rate == 50 and codec.cardinality == 128
    wav = torch.randn(1, 1, 1280)
    expected_codes, _ = hf_codes_and_audio(model, wav)
    assert torch.equal(codec.eval().encode(wav), expected_codes)


@pytest.mark.parametrize("change, message", [
    (dict(normalize=True), "normalize"),
    (dict(chunk_length_s=1.0, overlap=0.01), "chunk"),
    (dict(norm_type="time_group_norm"), "norm_type"),
    (dict(model_type="musicgen"), "model_type"),
])
def test_unsupported_variants_are_refused(change, message):
    config = {**EncodecConfig(num_filters=4, hidden_size=8).to_dict(), **change}
    with pytest.raises(ValueError, match=message):
        Codec.from_hf(config, {})


def test_tensor_that_does_not_match_config_is_named(tmp_path):
    build_hf_model(tmp_path, **CONFIGS["causal_shortcut_1lstm"])
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["decoder.layers.1.lstm.weight_hh_l0"] = torch.zeros(3, 3)
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"decoder\.layers\.1\.lstm\.weight_hh_l0"):
        Codec.from_pretrained(tmp_path)
    del tensors["decoder.layers.1.lstm.weight_hh_l0"]
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing tensor 'decoder\.layers\.1\.lstm\.weight_hh_l0'"):
        Codec.from_pretrained(tmp_path)
