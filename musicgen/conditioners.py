"""Text conditioning: a text encoder (frozen by default) and its tokenizer turn prompts into the LM's condition.

    prompts ─► tokenizer (padded) ─► encoder ─► condition [B, L, D_text] (token-level hidden states), mask [B, L]

The encoder is a T5 (musicgen/t5.py: published MusicGen weights, or one made from scratch:
musicgen/train/text_encoder.py), read from a folder, or a pretrained sentence encoder (a BERT: musicgen/bert.py) installed as a package (musicgen/sentence_encoder.py: "minilm"),
whose weights no checkpoint copies as long as they stay the package's (`package`).

The projection to the LM width lives in the LM (`LM.condition_projection`), so a condition can be
computed once and reused. An empty prompt (or one of only spaces) means "no condition": its mask row is
all False, which makes the LM see zeros, exactly like the null condition of classifier-free guidance.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .config import PACKAGED_TEXT_ENCODERS
from .sentence_encoder import load_packaged
from .text_encoders import TextEncoder, read_encoder, write_encoder


class TextConditioner(nn.Module):
    """Text encoder + tokenizer. Frozen (eval mode, no gradients) unless `set_trainable(True)` for joint training.

    package: the name of the installed package the encoder's weights are (`sentence_encoder.PACKAGES`), None for
    weights of its own (read from a folder, or trained).
    """

    def __init__(self, encoder: TextEncoder, tokenizer: PreTrainedTokenizerBase, *,
                 package: str | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.package = package
        self.set_trainable(False)

    def set_trainable(self, trainable: bool) -> TextConditioner:
        """trainable=True: the encoder takes gradients and follows train()/eval() (dropout) like the LM; its weights
        are then its own (`package` None), to be saved with the model."""
        self.trainable = trainable
        self.encoder.requires_grad_(trainable)
        if trainable:
            self.package = None
        return self.train(self.training)

    @classmethod
    def load(cls, source: str | Path, dtype: torch.dtype = torch.float32) -> TextConditioner:
        """A packaged encoder by name ("minilm": `sentence_encoder.PACKAGES`) or a folder (`from_pretrained`), its
        weights in `dtype`."""
        if str(source) in PACKAGED_TEXT_ENCODERS:
            return cls.from_package(str(source), dtype)
        return cls.from_pretrained(source, dtype)

    @classmethod
    def from_package(cls, name: str, dtype: torch.dtype = torch.float32) -> TextConditioner:
        """The pretrained encoder installed as the package `name` (if not, a ModuleNotFoundError naming the pip
        command)."""
        encoder, tokenizer = load_packaged(name, dtype)
        return cls(encoder, tokenizer, package=name)

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> TextConditioner:
        """Load a directory written by `save_pretrained` (or by transformers: a T5 or BERT encoder's config.json and
        model.safetensors, tokenizer files)."""
        path = Path(path)
        try:
            encoder = read_encoder(path, dtype)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error} (and its tokenizer files), or name a packaged one "
                                    f"({', '.join(PACKAGED_TEXT_ENCODERS)})") from None
        return cls(encoder, AutoTokenizer.from_pretrained(path, local_files_only=True))

    def save_pretrained(self, path: str | Path) -> None:
        write_encoder(self.encoder, Path(path))
        self.tokenizer.save_pretrained(path)

    @property
    def dim(self) -> int:
        """Width of the condition (the encoder's width)."""
        return self.encoder.dim

    def train(self, mode: bool = True) -> TextConditioner:
        """A frozen encoder stays in eval mode (no dropout) whatever the parent's mode."""
        return super().train(mode and self.trainable)

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts (B strings) -> condition [B, L, D_text] float32 (whatever the encoder's dtype), mask [B, L] bool
        (False: padding or empty prompt).

        An encoder of absolute positions (BERT) reads at most the tokenizer's model_max_length tokens a prompt.
        """
        check_prompts(prompts)
        prompts = [prompt if prompt.strip() else "" for prompt in prompts]  # only spaces: no condition either
        device = next(self.encoder.parameters()).device
        positional = hasattr(self.encoder.config, "max_position_embeddings")
        tokens = self.tokenizer(prompts, padding=True, truncation=positional, return_tensors="pt").to(device)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            condition = self.encoder(tokens.input_ids, tokens.attention_mask)
        condition = condition.float()
        mask = tokens.attention_mask.bool()
        empty = torch.tensor([prompt == "" for prompt in prompts], device=device)
        return condition, mask & ~empty[:, None]


def check_prompts(prompts: list[str]) -> None:
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    for prompt in prompts:
        if not isinstance(prompt, str):
            raise ValueError(f"every prompt must be a string, got {prompt!r} ({type(prompt).__name__})")


def null_condition(condition: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The condition of classifier-free guidance's unconditional rows: zeros, nothing to attend to."""
    return torch.zeros_like(condition), torch.zeros_like(mask)
