"""Attention of the LM: self-attention over the sequence and its prefix rows if any (causal, or through a
preallocated KV cache during generation) and, unless lm.cross_attention is false, cross-attention to the text
condition, on PyTorch's SDPA or xformers' kernels.

    x [B, S, D] ─► query/key/value projections ─► split into H heads [B, H, S, head_dim] ─► attend ─► merge ─► out
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LMConfig
from .positions import rotate


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask (True = attend) as the float one attention adds to its scores: 0 where allowed, -inf elsewhere.
    Made once per generation, it spares every attention call the conversion (two ops in each)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))


def attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None,
           causal: bool, backend: str, dropout: float) -> torch.Tensor:
    """Scaled dot-product attention on [B, H, S, head_dim] tensors; mask is `additive_mask`'s (0 = attend, -inf = not),
    broadcast to [B, H, S, S_kv]."""
    if backend == "xformers":
        return _attend_xformers(query, keys, values, mask, causal, dropout)
    return F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, is_causal=causal, dropout_p=dropout)


def _attend_xformers(query, keys, values, mask, causal, dropout):
    try:
        from xformers.ops import LowerTriangularMask, memory_efficient_attention
    except ImportError as error:
        raise ValueError("lm.attention_backend='xformers' needs the xformers package (pip install xformers)") from error
    bias = None
    if causal:
        bias = LowerTriangularMask()
    elif mask is not None:
        shape = (query.shape[0], query.shape[1], query.shape[2], keys.shape[2])
        bias = mask.to(query.dtype).expand(shape).contiguous()
    output = memory_efficient_attention(query.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2),
                                        attn_bias=bias, p=dropout)
    return output.transpose(1, 2)


class KVCache(nn.Module):
    """Preallocated self-attention keys and values [B, H, max_steps, head_dim], written in place."""

    def __init__(self, batch: int, num_heads: int, max_steps: int, head_dim: int, *, dtype: torch.dtype,
                 device) -> None:
        super().__init__()
        shape = (batch, num_heads, max_steps, head_dim)
        self.register_buffer("keys", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("values", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def clear(self) -> None:
        self.keys.zero_()
        self.values.zero_()

    def update(self, positions: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write keys/values [B, H, S', head_dim] at positions [S']; return the whole cache."""
        self.keys.index_copy_(2, positions, keys)
        self.values.index_copy_(2, positions, values)
        return self.keys, self.values


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, S, D] -> [B, H, S, D / H]."""
    return x.view(x.shape[0], x.shape[1], num_heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, S, head_dim] -> [B, S, H * head_dim]."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


class SelfAttention(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.query = nn.Linear(config.dim, config.dim, bias=False)
        self.key = nn.Linear(config.dim, config.dim, bias=False)
        self.value = nn.Linear(config.dim, config.dim, bias=False)
        self.out = nn.Linear(config.dim, config.dim, bias=False)
        self.query_key_value: nn.Module | None = None  # the three above in one (LM.fuse_projections)
        self.kv_cache: KVCache | None = None

    def forward(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
                rotation: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x [B, S, D] -> [B, S, D]; causal over x alone, or over the cache when one is set up.

        With a cache, mask [S, S_kv] (additive: 0 = attend, -inf = not) covers the first S_kv cache positions, the
        only ones read.
        rotation: `rotary_angles` of the positions, for position_encoding "rope".
        """
        if self.query_key_value is not None:
            projections = self.query_key_value(x).chunk(3, dim=-1)
        else:
            projections = self.query(x), self.key(x), self.value(x)
        query, keys, values = (split_heads(projection, self.config.num_heads) for projection in projections)
        if rotation is not None:
            query, keys = rotate(query, rotation), rotate(keys, rotation)
        if self.kv_cache is not None:
            keys, values = self.kv_cache.update(positions, keys, values)
            keys, values = keys[:, :, :mask.shape[-1]], values[:, :, :mask.shape[-1]]
        dropout = self.config.dropout if self.training else 0.0
        causal = self.kv_cache is None
        output = attend(query, keys, values, None if causal else mask, causal, self.config.attention_backend, dropout)
        return self.out(merge_heads(output))


class CrossAttention(nn.Module):
    """Attention to the condition. Its keys and values are computed once per condition (`keys_values`),
    by one projection to both."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.query = nn.Linear(config.dim, config.dim, bias=False)
        self.key_value = nn.Linear(config.dim, 2 * config.dim, bias=False)
        self.out = nn.Linear(config.dim, config.dim, bias=False)

    def keys_values(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """condition [B, L, D] -> keys, values [B, H, L, head_dim]."""
        keys, values = self.key_value(condition).chunk(2, dim=-1)
        return split_heads(keys, self.config.num_heads), split_heads(values, self.config.num_heads)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, S, D] attends to the condition's keys/values; mask [B, 1, 1, L] additive (0 = attend, -inf = not)."""
        query = split_heads(self.query(x), self.config.num_heads)
        dropout = self.config.dropout if self.training else 0.0
        output = attend(query, keys, values, mask, False, self.config.attention_backend, dropout)
        return self.out(merge_heads(output))
