"""Text conditioning: a T5 encoder (frozen by default) and its tokenizer turn prompts into a condition the LM attends to.

    prompts ─► tokenizer (padded) ─► T5 encoder ─► condition [B, L, D_t5], mask [B, L]

The projection to the LM width lives in the LM (`LM.condition_projection`), so a condition can be
computed once and reused. An empty prompt (or one of only spaces) means "no condition": its mask row is
all False, which makes the LM see zeros, exactly like the null condition of classifier-free guidance.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5EncoderModel


class TextConditioner(nn.Module):
    """T5 encoder + tokenizer. Frozen (eval mode, no gradients) unless `set_trainable(True)` for joint training."""

    def __init__(self, encoder: T5EncoderModel, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.set_trainable(False)

    def set_trainable(self, trainable: bool) -> TextConditioner:
        """trainable=True: the encoder takes gradients and follows train()/eval() (T5 dropout) like the LM."""
        self.trainable = trainable
        self.encoder.requires_grad_(trainable)
        return self.train(self.training)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TextConditioner:
        """Load a directory written by `save_pretrained` (T5 config, weights and tokenizer files)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} must hold a T5 encoder saved by transformers (config.json, model.safetensors, tokenizer files)")
        try:
            encoder = T5EncoderModel.from_pretrained(path, local_files_only=True)
        except SafetensorError as error:
            raise ValueError(f"{path}: the text encoder's weights are not a readable safetensors file "
                             f"(truncated or corrupt?): {error}") from None
        return cls(encoder, AutoTokenizer.from_pretrained(path, local_files_only=True))

    def save_pretrained(self, path: str | Path) -> None:
        self.encoder.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @property
    def dim(self) -> int:
        """Width of the condition (the T5 model width)."""
        return self.encoder.config.d_model

    def train(self, mode: bool = True) -> TextConditioner:
        """A frozen encoder stays in eval mode (no dropout) whatever the parent's mode."""
        return super().train(mode and self.trainable)

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """prompts (B strings) -> condition [B, L, D_t5] float, mask [B, L] bool (False: padding or empty prompt)."""
        check_prompts(prompts)
        prompts = [prompt if prompt.strip() else "" for prompt in prompts]  # only spaces: no condition either
        device = self.encoder.device
        tokens = self.tokenizer(prompts, padding=True, return_tensors="pt").to(device)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            condition = self.encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
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
