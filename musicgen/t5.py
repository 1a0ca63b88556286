"""T5's encoder, the text encoder of published MusicGen (t5-base) and of the T5s trained here from scratch.

    encoder = T5Encoder(T5EncoderConfig.from_dict(json.loads(Path("config.json").read_text())))
    states = encoder(input_ids, attention_mask)          # [B, L] ids, [B, L] 0/1 -> [B, L, d_model]

A stack of pre-norm blocks: RMS norm, self-attention, residual; RMS norm, feed-forward, residual; a last RMS norm.
T5 has no position embeddings and no attention scaling: every head adds a learned bias for each bucket of relative
distance (exact up to 16 tokens apart, then log-spaced up to 128), computed once by the first block and shared by
all of them. The config reads transformers' T5Config keys and the modules carry transformers' weight names, so a
checkpoint of either reads into the other as it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FEED_FORWARDS = ("relu", "gated-gelu")  # t5-base's, and T5 v1.1's / flan-t5's


@dataclass
class T5EncoderConfig:
    vocab_size: int = 32128
    d_model: int = 768
    d_kv: int = 64
    d_ff: int = 3072
    num_layers: int = 12
    num_heads: int = 12
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"

    def __post_init__(self) -> None:
        if self.feed_forward_proj not in FEED_FORWARDS:
            raise ValueError(f"feed_forward_proj must be one of {FEED_FORWARDS}, got {self.feed_forward_proj!r}")

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> T5EncoderConfig:
        """From a T5 config.json (transformers' keys; the ones an encoder does not use are ignored)."""
        return cls(**{field.name: config[field.name] for field in fields(cls) if field.name in config})

    def to_dict(self) -> dict[str, Any]:
        """A config.json that transformers reads as a T5Config too."""
        return {"model_type": "t5", "architectures": ["T5EncoderModel"], "is_encoder_decoder": False,
                **{field.name: getattr(self, field.name) for field in fields(self)}}


class RMSNorm(nn.Module):
    """T5's layer norm: scale by the root mean square (computed in float32), no mean, no bias."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps)).to(self.weight.dtype)


def relative_buckets(query_length: int, key_length: int, num_buckets: int, max_distance: int,
                     device: torch.device) -> torch.Tensor:
    """[query_length, key_length] bucket of each key's distance from each query: half the buckets for keys
    before, half for keys after; in each half, exact distances below num_buckets / 4, log-spaced ones beyond."""
    distance = torch.arange(key_length, device=device)[None, :] - torch.arange(query_length, device=device)[:, None]
    half = num_buckets // 2
    bucket = (distance > 0).long() * half
    distance = distance.abs()
    exact = half // 2
    far = exact + (torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    return bucket + torch.where(distance < exact, distance, far.clamp(max=half - 1))


class SelfAttention(nn.Module):
    def __init__(self, config: T5EncoderConfig, has_relative_bias: bool) -> None:
        super().__init__()
        self.config = config
        inner = config.num_heads * config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets, config.num_heads)

    def position_bias(self, length: int) -> torch.Tensor:
        """[1, H, L, L] the learned bias of each head for each query-key distance (first block only)."""
        config = self.config
        buckets = relative_buckets(length, length, config.relative_attention_num_buckets,
                                   config.relative_attention_max_distance, self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)[None]

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x [B, L, d_model], bias [B, H, L, L] (position bias plus the padding mask) -> [B, L, d_model]."""
        batch, length, _ = x.shape
        q, k, v = (projection(x).view(batch, length, self.config.num_heads, -1).transpose(1, 2)
                   for projection in (self.q, self.k, self.v))
        scores = torch.matmul(q, k.transpose(-1, -2)) + bias  # no 1/sqrt(d_kv): T5 folds it into its init
        weights = F.dropout(F.softmax(scores.float(), dim=-1).type_as(scores), self.config.dropout_rate, self.training)
        return self.o(torch.matmul(weights, v).transpose(1, 2).reshape(batch, length, -1))


class FeedForward(nn.Module):
    """relu: wo(relu(wi(x))); gated-gelu: wo(gelu(wi_0(x)) * wi_1(x)), tanh-approximated gelu."""

    def __init__(self, config: T5EncoderConfig) -> None:
        super().__init__()
        self.gated = config.feed_forward_proj == "gated-gelu"
        if self.gated:
            self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
            self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        else:
            self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x) if self.gated else F.relu(self.wi(x))
        return self.wo(self.dropout(hidden))


class AttentionLayer(nn.Module):
    def __init__(self, config: T5EncoderConfig, has_relative_bias: bool) -> None:
        super().__init__()
        self.SelfAttention = SelfAttention(config, has_relative_bias)
        self.layer_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.SelfAttention(self.layer_norm(x), bias))


class FeedForwardLayer(nn.Module):
    def __init__(self, config: T5EncoderConfig) -> None:
        super().__init__()
        self.DenseReluDense = FeedForward(config)
        self.layer_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.DenseReluDense(self.layer_norm(x)))


class Block(nn.Module):
    def __init__(self, config: T5EncoderConfig, has_relative_bias: bool) -> None:
        super().__init__()
        self.layer = nn.ModuleList([AttentionLayer(config, has_relative_bias), FeedForwardLayer(config)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.layer[1](self.layer[0](x, bias))


class Stack(nn.Module):
    def __init__(self, config: T5EncoderConfig, token_embedding: nn.Parameter) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_tokens.weight = token_embedding  # tied, as transformers ties it (so that FSDP shards it once)
        self.block = nn.ModuleList(Block(config, has_relative_bias=index == 0) for index in range(config.num_layers))
        self.final_layer_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)


class T5Encoder(nn.Module):
    """T5EncoderModel's weights under its names: `shared` (the token embedding, also `encoder.embed_tokens`),
    `encoder.block.{i}`, `encoder.final_layer_norm`."""

    def __init__(self, config: T5EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = Stack(config, self.shared.weight)

    @property
    def dim(self) -> int:
        return self.config.d_model

    @torch.no_grad()
    def init_weights(self) -> T5Encoder:
        """T5's initialisation, for an encoder trained from scratch: normal weights of std 1 for the embedding,
        (d_model * d_kv) ** -0.5 for the queries (the scaling attention leaves out), fan_in ** -0.5 for the others."""
        config = self.config
        nn.init.normal_(self.shared.weight, std=1.0)
        for module in self.modules():
            if isinstance(module, SelfAttention):
                nn.init.normal_(module.q.weight, std=(config.d_model * config.d_kv) ** -0.5)
                for projection in (module.k, module.v, module.o):
                    nn.init.normal_(projection.weight, std=projection.in_features ** -0.5)
                if hasattr(module, "relative_attention_bias"):
                    nn.init.normal_(module.relative_attention_bias.weight, std=config.d_model ** -0.5)
            elif isinstance(module, FeedForward):
                for linear in (module.wi_0, module.wi_1, module.wo) if module.gated else (module.wi, module.wo):
                    nn.init.normal_(linear.weight, std=linear.in_features ** -0.5)
            elif isinstance(module, RMSNorm):
                module.weight.fill_(1.0)
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids [B, L] int64, attention_mask [B, L] (1: token, 0: padding) -> states [B, L, d_model]."""
        stack = self.encoder
        dtype = stack.final_layer_norm.weight.dtype  # the blocks'; the embedding may be float32 beside them
        x = stack.dropout(stack.embed_tokens(input_ids).to(dtype))
        padding = (1 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        bias = stack.block[0].layer[0].SelfAttention.position_bias(input_ids.shape[1]).to(dtype) + padding
        for block in stack.block:
            x = block(x, bias)
        return stack.dropout(stack.final_layer_norm(x))
