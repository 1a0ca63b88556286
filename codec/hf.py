"""Hugging Face EnCodec checkpoints (transformers' EncodecModel) -> this project's CodecConfig and tensor names.

    codec = Codec.from_hf(json.load(open("config.json")), load_file("model.safetensors"))
    codec = Codec.from_hf(musicgen_config["audio_encoder"], audio_encoder_state_dict)  # prefix stripped

The SEANet modules already carry EnCodec's names; only weight-norm tensors of older checkpoints
(`weight_g`, `weight_v`) and the codebook buffers are renamed. Supported: the unchunked,
unnormalised models with weight norm (facebook/encodec_24khz, facebook/encodec_32khz, the codecs
of MusicGen). Chunked encoding, input normalisation and time group norm (EnCodec 48 kHz) are refused.
"""
from __future__ import annotations

import math
import re

import torch

from .config import CodecConfig

# transformers' EncodecConfig defaults, for config.json files that leave keys out.
HF_DEFAULTS = {
    "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0], "sampling_rate": 24_000, "audio_channels": 1,
    "normalize": False, "chunk_length_s": None, "hidden_size": 128, "num_filters": 32, "num_residual_layers": 1,
    "upsampling_ratios": [8, 5, 4, 2], "norm_type": "weight_norm", "kernel_size": 7, "last_kernel_size": 7,
    "residual_kernel_size": 3, "dilation_growth_rate": 2, "use_causal_conv": True, "pad_mode": "reflect",
    "compress": 2, "num_lstm_layers": 2, "trim_right_ratio": 1.0, "codebook_size": 1024, "codebook_dim": None,
    "use_conv_shortcut": True,
}

CODEBOOK_RENAMES = {"embed": "codebook", "embed_avg": "embed_sum", "cluster_size": "cluster_size", "inited": "initialized"}


def codec_config_from_hf(hf_config: dict) -> CodecConfig:
    """A CodecConfig from an EncodecConfig dict; ValueError for variants this codec does not run."""
    if hf_config.get("model_type", "encodec") != "encodec":
        raise ValueError(f"expected an EnCodec config (model_type 'encodec'), got model_type {hf_config['model_type']!r}")
    c = {**HF_DEFAULTS, **{key: value for key, value in hf_config.items() if value is not None}}
    if c["chunk_length_s"] is not None:
        raise ValueError(f"chunked EnCodec (chunk_length_s={c['chunk_length_s']}) is not supported; expected chunk_length_s None")
    if c["normalize"]:
        raise ValueError("EnCodec with normalize=True (input rescaling) is not supported; expected normalize False")
    if c["norm_type"] != "weight_norm":
        raise ValueError(f"EnCodec norm_type {c['norm_type']!r} is not supported; expected 'weight_norm'")
    if c["trim_right_ratio"] != 1.0:
        raise ValueError(f"EnCodec trim_right_ratio {c['trim_right_ratio']} is not supported; expected 1.0")
    if c["codebook_dim"] not in (None, c["hidden_size"]):
        raise ValueError(f"expected codebook_dim equal to hidden_size {c['hidden_size']}, got {c['codebook_dim']}")
    hop = math.prod(c["upsampling_ratios"])
    frame_rate = math.ceil(c["sampling_rate"] / hop)
    bits = math.ceil(math.log2(c["codebook_size"]))
    num_codebooks = int(1000 * c["target_bandwidths"][-1] // (frame_rate * bits))
    if num_codebooks < 1:
        raise ValueError(f"target_bandwidths {c['target_bandwidths']} give no codebook at {frame_rate} Hz and {bits} bits")
    return CodecConfig(
        sample_rate=c["sampling_rate"], channels=c["audio_channels"], dimension=c["hidden_size"],
        n_filters=c["num_filters"], ratios=list(c["upsampling_ratios"]), n_residual_layers=c["num_residual_layers"],
        dilation_base=c["dilation_growth_rate"], kernel_size=c["kernel_size"], last_kernel_size=c["last_kernel_size"],
        residual_kernel_size=c["residual_kernel_size"], compress=c["compress"], conv_shortcut=c["use_conv_shortcut"],
        causal=c["use_causal_conv"], pad_mode=c["pad_mode"], lstm_layers=c["num_lstm_layers"], norm="weight_norm",
        num_codebooks=num_codebooks, cardinality=c["codebook_size"],
    )


def state_dict_from_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename EncodecModel tensors (no prefix) to this project's names."""
    renamed = {}
    for name, tensor in state_dict.items():
        name = re.sub(r"\.weight_g$", ".parametrizations.weight.original0", name)
        name = re.sub(r"\.weight_v$", ".parametrizations.weight.original1", name)
        codebook = re.fullmatch(r"quantizer\.layers\.(\d+)\.codebook\.(\w+)", name)
        if codebook and codebook.group(2) in CODEBOOK_RENAMES:
            name = f"quantizer.levels.{codebook.group(1)}.{CODEBOOK_RENAMES[codebook.group(2)]}"
            if codebook.group(2) == "inited":
                tensor = tensor.reshape(()).bool()
        renamed[name] = tensor
    return renamed
