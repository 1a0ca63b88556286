"""Position encodings of the LM: MusicGen's sinusoids added to the embeddings, or rotary angles that
self-attention turns its queries and keys by (`LMConfig.position_encoding`)."""
from __future__ import annotations

import math

import torch

ROPE_BASE = 10000.0


def sinusoidal_positions(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """positions [S] -> [S, dim]: cosines then sines of position · 10000^(-i / (dim/2 - 1)), as in MusicGen.
    Computed per call rather than kept as a max_positions x dim table (8 MB at musicgen-small's shape)."""
    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float32, device=positions.device)
    frequencies = torch.exp(exponents * -(math.log(10000) / (half - 1)))
    angles = positions.to(torch.float32)[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        embedding = torch.cat([embedding, embedding.new_zeros(len(positions), 1)], dim=1)
    return embedding


def rotary_angles(positions: torch.Tensor, head_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position encoding (Su et al., 2021): positions [S] -> (cos, sin), each [S, head_dim / 2], of
    position · ROPE_BASE^(-2i / head_dim). Computed once per forward or decode step and shared by every layer."""
    half = head_dim // 2
    frequencies = ROPE_BASE ** (-torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    angles = positions.to(torch.float32)[:, None] * frequencies[None, :]
    return torch.cos(angles).to(dtype), torch.sin(angles).to(dtype)


def rotate(x: torch.Tensor, rotation: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x [B, H, S, head_dim] -> same shape: pairs (i, i + head_dim/2) turned by `rotary_angles`, so the product
    of a rotated query and a rotated key depends on their positions only through the offset between them."""
    cos, sin = rotation
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)
