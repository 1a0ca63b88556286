"""The text encoders this project runs (musicgen/t5.py, musicgen/bert.py), read from and written to a folder in
transformers' layout: config.json (its `model_type` says which) and model.safetensors.

    encoder = read_encoder(Path("runs/text_encoder"))    # T5Encoder or BertEncoder, weights memory-mapped
    write_encoder(encoder, Path("out"))

Writing them here rather than running transformers' models keeps transformers' modelling code out of every
generation (its import alone: 123 MB resident and 2 s; after a load about 50 MB, since torch imports much of the
same once modules are built on the meta device: docs/benchmarks.md); tokenizers and configs still come from
transformers.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from infra.weights import load_weights, read_weights

from .bert import BertEncoder, BertEncoderConfig
from .t5 import T5Encoder, T5EncoderConfig

TextEncoder = T5Encoder | BertEncoder
ENCODERS = {"t5": (T5EncoderConfig, T5Encoder), "bert": (BertEncoderConfig, BertEncoder)}  # by model_type
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
T5_EMBEDDING_NAMES = ("shared.weight", "encoder.embed_tokens.weight")  # one tensor, stored under either name
NOT_READ = ("pooler.", "embeddings.position_ids")  # BertModel's pooler and position buffer: the condition needs neither


def encoder_from_config(config: dict, path: Path | str = "the config", dtype: torch.dtype = torch.float32) -> TextEncoder:
    """An encoder of transformers' config dict `config` (its model_type "t5" or "bert"), on the meta device, its
    weights in `dtype` but for its embedding tables: those stay float32, so that they can stay memory-mapped in the
    file (a lookup reads only the rows of a prompt's tokens: most of a 32128 x 768 table is never resident)."""
    model_type = config.get("model_type")
    if model_type not in ENCODERS:
        raise ValueError(f"{path} holds a {model_type!r} model; expected a text encoder of type "
                         f"{' or '.join(ENCODERS)}")
    config_class, encoder_class = ENCODERS[model_type]
    with torch.device("meta"):
        encoder = encoder_class(config_class.from_dict(config)).to(dtype)
    for module in encoder.modules():
        if isinstance(module, nn.Embedding):
            module.float()
    return encoder


def cast_names(encoder: TextEncoder) -> set[str]:
    """The weights `encoder` holds in another dtype than float32: those to read through a mapping of their own and
    cast (`infra.weights.read_weights`), so that no float32 page of theirs stays resident; the others stay mapped."""
    return {name for name, tensor in encoder.state_dict().items() if tensor.dtype != torch.float32}


def load_encoder_weights(encoder: TextEncoder, state: dict[str, torch.Tensor]) -> None:
    """Make `encoder` hold `state` (cast to its dtype where they differ): a T5's token embedding under either of
    its names, a BERT's pooler and position buffer skipped. A mismatch is a ValueError naming the tensor."""
    state = {name: tensor for name, tensor in state.items() if not name.startswith(NOT_READ)}
    if isinstance(encoder, T5Encoder):
        embedding = next((state[name] for name in T5_EMBEDDING_NAMES if name in state), None)
        if embedding is not None:
            state.update(dict.fromkeys(T5_EMBEDDING_NAMES, embedding))
    load_weights(encoder, state)


def read_encoder(path: Path, dtype: torch.dtype = torch.float32) -> TextEncoder:
    """The encoder in folder `path`, in `dtype` (its embedding tables float32: `encoder_from_config`) and eval mode:
    float32 weights stay memory-mapped, others are read and cast."""
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{path} must hold a text encoder's {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path / CONFIG_FILE} is not valid JSON: {error}") from None
    encoder = encoder_from_config(config, path, dtype)
    cast = cast_names(encoder)
    state = read_weights(path / WEIGHTS_FILE, apart=lambda name: "cast" if name in cast else None)
    try:
        load_encoder_weights(encoder, state)
    except ValueError as error:
        raise ValueError(f"{path / WEIGHTS_FILE} does not match its {CONFIG_FILE}: {error}") from None
    return encoder.eval()


def write_encoder(encoder: TextEncoder, path: Path) -> None:
    """config.json (transformers reads it too) and model.safetensors (a T5's embedding once, as `shared.weight`)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(json.dumps(encoder.config.to_dict(), indent=2) + "\n")
    state = {name: tensor.detach().contiguous() for name, tensor in encoder.state_dict().items()
             if name != T5_EMBEDDING_NAMES[1]}
    save_file(state, str(path / WEIGHTS_FILE), metadata={"format": "pt"})
