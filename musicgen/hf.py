"""Hugging Face MusicGen layout -> this project's modules, translated at load time.

A directory in the layout of facebook/musicgen-small holds `config.json` (a MusicgenConfig with
`text_encoder`, `audio_encoder` and `decoder` sections), `model.safetensors` (or shards listed in
`model.safetensors.index.json`) with `text_encoder.*`, `audio_encoder.*`, `enc_to_dec_proj.*` and
`decoder.*` weights, and the T5 tokenizer files. The decoder maps onto `LM` like this:

    decoder.model.decoder.embed_tokens.{k}           -> embeddings.{k}
    decoder.model.decoder.layers.{i}.self_attn.{q,k,v,out}_proj -> layers.{i}.self_attention.{query,key,value,out}
    decoder.model.decoder.layers.{i}.encoder_attn.{q,out}_proj  -> layers.{i}.cross_attention.{query,out}
    decoder.model.decoder.layers.{i}.encoder_attn.{k,v}_proj    -> layers.{i}.cross_attention.key_value (stacked)
    decoder.model.decoder.layers.{i}.fc1 / fc2              -> layers.{i}.feed_forward.up / down
    decoder.model.decoder.layers.{i}.{self_attn,encoder_attn,final}_layer_norm -> {self_attention,cross_attention,feed_forward}_norm
    decoder.model.decoder.layer_norm                 -> norm
    decoder.lm_heads.{k}                             -> heads.{k}
    enc_to_dec_proj                                  -> condition_projection (identity when absent)

MusicGen's codebooks are laid out with the delay pattern, delays 0, 1, ..., K-1. A stereo model
(decoder.audio_channels 2) runs its mono EnCodec on each channel (codec/stereo.py): its K decoder codebooks are
L0 R0 L1 R1 ..., each left/right pair sharing one delay (0, 0, 1, 1, ..., K/2 - 1).
"""
from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoTokenizer, MusicgenConfig

from codec import Codec
from codec.model import is_decoder_weight_norm_half
from codec.stereo import InterleavedStereoCodec
from infra.weights import read_weights

from .conditioners import TextConditioner
from .config import LMConfig, PatternConfig
from .lm import ACTIVATIONS, LM
from .t5 import T5Encoder
from .text_encoders import load_encoder_weights

HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_WEIGHTS_INDEX = "model.safetensors.index.json"
DECODER = "decoder.model.decoder."


def is_hf_layout(path: Path) -> bool:
    return (path / HF_CONFIG).is_file() and ((path / HF_WEIGHTS).is_file() or (path / HF_WEIGHTS_INDEX).is_file())


def read_hf_config(path: Path) -> MusicgenConfig:
    """The full MusicgenConfig (defaults filled in) of an HF MusicGen directory."""
    data = json.loads((path / HF_CONFIG).read_text())
    if data.get("model_type") != "musicgen":
        raise ValueError(f"{path / HF_CONFIG} is not a MusicGen config (model_type={data.get('model_type')!r}, "
                         "expected 'musicgen', or 'musicgen_melody' for a melody model)")
    try:
        return MusicgenConfig.from_dict(data)
    except StrictDataclassError as error:  # transformers' own checks, e.g. decoder.audio_channels 1 or 2
        raise ValueError(f"{path / HF_CONFIG} is not a valid MusicGen config: {' '.join(str(error).split())}") from error


def read_hf_weights(path: Path, *, text_encoder_cast: Collection[str] = ()) -> dict[str, torch.Tensor]:
    """Every tensor of model.safetensors, or of the shards its index lists (`infra.weights.read_weights`: mapped;
    those that inference replaces through a mapping of their own for each part, so that one part's replacement frees
    its pages: the decoder's matrices, the codec decoder's weight-norm halves, and the T5 weights that
    `text_encoder_cast` names without their "text_encoder." prefix, those that a text encoder in another dtype than
    the file's casts: `text_encoders.cast_names`)."""
    def replaced(name: str) -> str | None:
        prefix, _, rest = name.partition(".")
        if name.startswith((DECODER + "layers.", "decoder.lm_heads.")) and "layer_norm" not in name:
            return "decoder"
        if prefix == "audio_encoder" and is_decoder_weight_norm_half(rest):
            return "audio_encoder"
        return "text_encoder" if prefix == "text_encoder" and rest in text_encoder_cast else None

    if (path / HF_WEIGHTS).is_file():
        return read_weights(path / HF_WEIGHTS, apart=replaced)
    shards = sorted(set(json.loads((path / HF_WEIGHTS_INDEX).read_text())["weight_map"].values()))
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(read_weights(path / shard, apart=replaced))
    return state


def split_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with the prefix removed."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def lm_config_from_hf(config: MusicgenConfig) -> LMConfig:
    decoder = config.decoder
    if decoder.audio_channels not in (1, 2):
        raise ValueError(f"decoder.audio_channels must be 1 (mono) or 2 (stereo), got {decoder.audio_channels}")
    if decoder.num_codebooks % decoder.audio_channels:
        raise ValueError(f"a stereo decoder interleaves the two channels' codebooks: expected an even num_codebooks, "
                         f"got {decoder.num_codebooks}")
    if decoder.scale_embedding:
        raise ValueError("MusicGen decoders with scale_embedding=True are not supported")
    if decoder.activation_function not in ACTIVATIONS:
        raise ValueError(f"unsupported decoder activation {decoder.activation_function!r}; expected one of {sorted(ACTIVATIONS)}")
    for name in ("pad_token_id", "bos_token_id"):
        if getattr(decoder, name) != decoder.vocab_size:
            raise ValueError(f"decoder.{name} must be the special token {decoder.vocab_size} (= vocab_size), "
                             f"got {getattr(decoder, name)}")
    return LMConfig(num_codebooks=decoder.num_codebooks, cardinality=decoder.vocab_size, dim=decoder.hidden_size,
                    num_heads=decoder.num_attention_heads, num_layers=decoder.num_hidden_layers, ffn_dim=decoder.ffn_dim,
                    condition_dim=config.text_encoder.d_model, max_positions=decoder.max_position_embeddings,
                    activation=decoder.activation_function)


def lm_state_from_hf(state: dict[str, torch.Tensor], config: LMConfig) -> dict[str, torch.Tensor]:
    """HF decoder + enc_to_dec_proj tensors -> an `LM` state dict."""
    decoder = split_prefix(state, DECODER)
    ours = {"norm.weight": decoder["layer_norm.weight"], "norm.bias": decoder["layer_norm.bias"]}
    for k in range(config.num_codebooks):
        ours[f"embeddings.{k}.weight"] = decoder[f"embed_tokens.{k}.weight"]
        ours[f"heads.{k}.weight"] = state[f"decoder.lm_heads.{k}.weight"]
    for i in range(config.num_layers):
        ours.update(_layer_from_hf(split_prefix(decoder, f"layers.{i}."), f"layers.{i}."))
    return ours | projection_from_hf(state, "enc_to_dec_proj", "condition_projection", config.dim)


def projection_from_hf(state: dict[str, torch.Tensor], hf_name: str, our_name: str, dim: int) -> dict[str, torch.Tensor]:
    """our_name's weight and bias: the HF Linear hf_name's, or the identity [dim, dim] where the checkpoint has none
    (transformers leaves the projection out when its input is already dim wide)."""
    if f"{hf_name}.weight" not in state:
        return {f"{our_name}.weight": torch.eye(dim), f"{our_name}.bias": torch.zeros(dim)}
    return {f"{our_name}.weight": state[f"{hf_name}.weight"], f"{our_name}.bias": state[f"{hf_name}.bias"]}


def _layer_from_hf(layer: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """One decoder layer's tensors; its cross-attention (encoder_attn) where it has one (a melody decoder has none)."""
    ours = {
        "self_attention.query.weight": layer["self_attn.q_proj.weight"],
        "self_attention.key.weight": layer["self_attn.k_proj.weight"],
        "self_attention.value.weight": layer["self_attn.v_proj.weight"],
        "self_attention.out.weight": layer["self_attn.out_proj.weight"],
        "feed_forward.up.weight": layer["fc1.weight"],
        "feed_forward.down.weight": layer["fc2.weight"],
    }
    norms = [("self_attn_layer_norm", "self_attention_norm"), ("final_layer_norm", "feed_forward_norm")]
    if "encoder_attn.q_proj.weight" in layer:
        ours["cross_attention.query.weight"] = layer["encoder_attn.q_proj.weight"]
        ours["cross_attention.key_value.weight"] = torch.cat([layer["encoder_attn.k_proj.weight"],
                                                              layer["encoder_attn.v_proj.weight"]])
        ours["cross_attention.out.weight"] = layer["encoder_attn.out_proj.weight"]
        norms.append(("encoder_attn_layer_norm", "cross_attention_norm"))
    for hf_norm, our_norm in norms:
        for name in ("weight", "bias"):
            ours[f"{our_norm}.{name}"] = layer[f"{hf_norm}.{name}"]
    return {prefix + key: value for key, value in ours.items()}


def lm_from_hf(config: MusicgenConfig, state: dict[str, torch.Tensor]) -> LM:
    """The LM holding the decoder's tensors (the key/value projections of cross-attention stacked into one)."""
    lm_config = lm_config_from_hf(config)
    return LM.from_weights(lm_config, lm_state_from_hf(state, lm_config)).eval()


def codec_from_hf(config: MusicgenConfig, state: dict[str, torch.Tensor]) -> Codec | InterleavedStereoCodec:
    """The EnCodec of the `audio_encoder.*` weights; for a stereo decoder, run on each channel, interleaved."""
    codec = Codec.from_hf(config.audio_encoder.to_dict(), split_prefix(state, "audio_encoder."))
    return InterleavedStereoCodec(codec) if config.decoder.audio_channels == 2 else codec


def pattern_from_hf(config: MusicgenConfig) -> PatternConfig:
    """The delay pattern; a stereo model's left and right codebooks of one level share a delay."""
    if config.decoder.audio_channels == 1:
        return PatternConfig("delay")
    return PatternConfig("delay", {"delays": [k // 2 for k in range(config.decoder.num_codebooks)]})


def conditioner_from_hf(encoder: T5Encoder, state: dict[str, torch.Tensor], path: Path) -> TextConditioner:
    """The T5 `encoder` (built on the meta device by `text_encoders.encoder_from_config` from the config's
    `text_encoder` section, in the dtype wanted) filled with the `text_encoder.*` weights, and the tokenizer files at
    the top of `path`."""
    try:
        load_encoder_weights(encoder, split_prefix(state, "text_encoder."))
    except ValueError as error:
        raise ValueError(f"text_encoder weights in {path} do not match T5: {error}") from error
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} must hold the T5 tokenizer files (tokenizer.json or spiece.model, tokenizer_config.json)") from error
    return TextConditioner(encoder, tokenizer)
