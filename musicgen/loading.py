"""Finding and reading a checkpoint: this project's directory or a Hugging Face MusicGen one, into the parts of
`MusicGen` (musicgen/api.py builds the model from them).

This project's checkpoint directory:

    config.yaml         MusicGenConfig: lm sizes, pattern name and options, generation defaults
    lm.safetensors      LM weights (condition projection included)
    codec/              the codec (Codec.save_pretrained; a stereo model's with codec/stereo.py's marker beside it)
    text_encoder/       T5 encoder config + weights and the tokenizer files (saved by transformers); absent when
                        config.yaml's text_encoder names a packaged encoder ("minilm"), read from the installed package
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from codec import Codec
from codec.stereo import InterleavedStereoCodec, load_codec
from infra.config import load_config
from infra.weights import read_weights

from . import hf, hf_melody
from .conditioners import TextConditioner
from .config import MusicGenConfig
from .lm import LM, replaced_for_inference
from .text_encoders import cast_names, encoder_from_config

CONFIG_FILE = "config.yaml"
LM_WEIGHTS = "lm.safetensors"
CODEC_DIR = "codec"
TEXT_ENCODER_DIR = "text_encoder"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _default_checkpoint() -> Path:
    """checkpoints/default: package data of `musicgen_checkpoints` (the repo's checkpoints/ folder, shipped by a wheel,
    `pip install .` or `pip install -e .`), else the checkout's folder (musicgen imported from a checkout that is not
    installed, or from an editable install made before that package existed)."""
    try:
        return Path(str(resources.files("musicgen_checkpoints") / "default"))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "checkpoints" / "default"


DEFAULT_CHECKPOINT = _default_checkpoint()


@dataclass
class Parts:
    """What a checkpoint holds: the settings, the LM, the text conditioner and the codec."""

    config: MusicGenConfig
    lm: LM
    conditioner: TextConditioner
    codec: Codec | InterleavedStereoCodec


def load_parts(path: Path, text_encoder_dtype: torch.dtype = torch.float32) -> Parts:
    """The parts of the checkpoint directory at `path`, in either layout, the text encoder's weights in
    `text_encoder_dtype`."""
    if (path / CONFIG_FILE).is_file():
        return _load_own(path, text_encoder_dtype)
    if hf.is_hf_layout(path):
        return _load_hf(path, text_encoder_dtype)
    raise FileNotFoundError(
        f"{path} is neither layout: expected {CONFIG_FILE}, {LM_WEIGHTS}, {CODEC_DIR}/ and {TEXT_ENCODER_DIR}/ "
        f"(this project), or {hf.HF_CONFIG} and {hf.HF_WEIGHTS} with the tokenizer files (Hugging Face MusicGen)")


def _load_own(path: Path, text_encoder_dtype: torch.dtype) -> Parts:
    config = load_config(MusicGenConfig, path / CONFIG_FILE)
    for required in (LM_WEIGHTS, CODEC_DIR) + (() if config.text_encoder else (TEXT_ENCODER_DIR,)):
        if not (path / required).exists():
            raise FileNotFoundError(f"{path} has {CONFIG_FILE} but no {required}; a checkpoint holds "
                                    f"{CONFIG_FILE}, {LM_WEIGHTS}, {CODEC_DIR}/ and {TEXT_ENCODER_DIR}/")
    state = read_weights(path / LM_WEIGHTS, apart=lambda name: "matrices" if replaced_for_inference(name) else None)
    lm = LM.from_weights(config.lm, state)
    conditioner = TextConditioner.load(config.text_encoder or path / TEXT_ENCODER_DIR, text_encoder_dtype)
    return Parts(config, lm, conditioner, load_codec(path / CODEC_DIR))


def _load_hf(path: Path, text_encoder_dtype: torch.dtype) -> Parts:
    """MusicGen, or a MusicGen melody model (musicgen/hf_melody.py), in the Hugging Face layout. A T5 cast to
    another dtype is read apart from the mapping the other weights stay in, so that its float32 pages do not stay
    resident (`infra.weights.read_weights`)."""
    melody = hf_melody.is_melody(path)
    hf_config = hf_melody.read_melody_config(path) if melody else hf.read_hf_config(path)
    text_encoder = encoder_from_config(hf_config.text_encoder.to_dict(), dtype=text_encoder_dtype)
    state = hf.read_hf_weights(path, text_encoder_cast=cast_names(text_encoder))
    lm = hf_melody.lm_from_hf_melody(hf_config, state) if melody else hf.lm_from_hf(hf_config, state)
    codec = hf.codec_from_hf(hf_config, state)
    config = MusicGenConfig(lm=lm.config, pattern=hf.pattern_from_hf(hf_config),
                            chroma=hf_melody.chroma_config_from_hf(path, codec.sample_rate))
    return Parts(config, lm, hf.conditioner_from_hf(text_encoder, state, path), codec)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A checked torch.device: "cpu", "cuda" or "cuda:N"; None: CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} was asked for but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device}; expected 'cpu', 'cuda' or 'cuda:N'")
    return device


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """A float type by name or value (one of DTYPES); None: float32."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if dtype in DTYPES.values():
        return dtype
    raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
