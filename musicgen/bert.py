"""BERT's encoder, the text encoder of the packaged sentence encoder all-MiniLM-L6-v2 (musicgen/sentence_encoder.py).

    encoder = BertEncoder(BertEncoderConfig.from_dict(json.loads(Path("config.json").read_text())))
    states = encoder(input_ids, attention_mask)          # [B, L] ids, [B, L] 0/1 -> [B, L, hidden_size]

Token, absolute position and (all-zero) token-type embeddings summed and layer-normed, then post-norm blocks:
self-attention, residual, layer norm; feed-forward (erf gelu), residual, layer norm. No pooler: the condition is
the token states. The config reads transformers' BertConfig keys and the modules carry transformers' weight names.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BertEncoderConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    hidden_act: str = "gelu"
    position_embedding_type: str = "absolute"

    def __post_init__(self) -> None:
        if self.hidden_act != "gelu" or self.position_embedding_type != "absolute":
            raise ValueError(f"only BERT with hidden_act 'gelu' and absolute positions is supported, got "
                             f"{self.hidden_act!r} and {self.position_embedding_type!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                             f"({self.num_attention_heads})")

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> BertEncoderConfig:
        """From a BERT config.json (transformers' keys; the ones this encoder does not use are ignored)."""
        return cls(**{field.name: config[field.name] for field in fields(cls) if field.name in config})

    def to_dict(self) -> dict[str, Any]:
        """A config.json that transformers reads as a BertConfig too."""
        return {"model_type": "bert", "architectures": ["BertModel"],
                **{field.name: getattr(self, field.name) for field in fields(self)}}


class Embeddings(nn.Module):
    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0] + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x.to(self.LayerNorm.weight.dtype)))  # the tables may be float32 beside it


class SelfAttention(nn.Module):
    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.num_heads, self.dropout = config.num_attention_heads, config.attention_probs_dropout_prob
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """x [B, L, D], padding [B, 1, 1, L] additive (0 or the dtype's minimum) -> [B, L, D], heads merged."""
        batch, length, _ = x.shape
        q, k, v = (projection(x).view(batch, length, self.num_heads, -1).transpose(1, 2)
                   for projection in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=padding, dropout_p=self.dropout if self.training else 0.0)
        return out.transpose(1, 2).reshape(batch, length, -1)


class Residual(nn.Module):
    """dense, dropout, then the layer norm of the sum with the sublayer's input (BERT's post-norm)."""

    def __init__(self, config: BertEncoderConfig, in_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class Attention(nn.Module):
    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.self = SelfAttention(config)
        self.output = Residual(config, config.hidden_size)


class Intermediate(nn.Module):
    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)


class Layer(nn.Module):
    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = Residual(config, config.intermediate_size)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.attention.output(self.attention.self(x, padding), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class Stack(nn.Module):
    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))


class BertEncoder(nn.Module):
    """BertModel's weights (without its pooler) under its names: `embeddings.*`, `encoder.layer.{i}.*`."""

    def __init__(self, config: BertEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Stack(config)

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids [B, L] int64 (L at most max_position_embeddings), attention_mask [B, L] (1: token, 0: padding)
        -> states [B, L, hidden_size]."""
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(f"BERT reads at most {self.config.max_position_embeddings} tokens, got {input_ids.shape[1]}")
        x = self.embeddings(input_ids)
        padding = (1 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, padding)
        return x
