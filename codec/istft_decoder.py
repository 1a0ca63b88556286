"""An inverse-STFT decoder (after Vocos): the codec's latents never leave the frame rate.

    decoder: latent [B, D, T] -> wav [B, C, T * hop]

A convolution embeds the latents, ConvNeXt blocks (depthwise convolution, LayerNorm, a 3x wider
MLP, a learned per-channel scale) mix them at the frame rate, and a linear head predicts, for each
frame and channel, the log-magnitude and phase of an STFT with window 4 x hop and hop `hop`; an
inverse STFT turns that spectrum into the waveform. A SEANet decoder must build every harmonic out
of upsampling convolutions; this one places energy in frequency bins directly, and learns pitched
sounds far sooner (and decodes faster). Chosen with `CodecConfig(decoder="istft")`; not causal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import CodecConfig

MAX_MAGNITUDE = 100.0
WINDOW_HOPS = 4


class ConvNeXtBlock(nn.Module):
    """h [B, width, T] -> h + scale * MLP(LayerNorm(depthwise_conv(h)))."""

    def __init__(self, width: int, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2, groups=width)
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 3 * width)
        self.down = nn.Linear(3 * width, width)
        self.scale = nn.Parameter(torch.full((width,), layer_scale))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        mixed = self.norm(self.depthwise(h).transpose(1, 2))
        return h + (self.down(F.gelu(self.up(mixed))) * self.scale).transpose(1, 2)


class IstftDecoder(nn.Module):
    """latent [B, dimension, T] -> wav [B, channels, T * hop] through an inverse STFT (window 4 x hop)."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        if config.causal:
            raise ValueError("the istft decoder is not causal: use decoder='seanet' with causal=true")
        width, self.channels, self.hop = config.istft_width, config.channels, config.hop_length
        self.n_fft = WINDOW_HOPS * self.hop
        self.embed = nn.Conv1d(config.dimension, width, config.kernel_size, padding=config.kernel_size // 2)
        self.embed_norm = nn.LayerNorm(width)
        self.blocks = nn.Sequential(*[ConvNeXtBlock(width, config.kernel_size, 1.0 / config.istft_layers)
                                      for _ in range(config.istft_layers)])
        self.final_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, self.channels * (self.n_fft + 2))  # per channel: n_fft/2+1 log-magnitudes and phases

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        batch, _, frames = latent.shape
        h = self.embed_norm(self.embed(latent).transpose(1, 2)).transpose(1, 2)
        h = self.final_norm(self.blocks(h).transpose(1, 2))
        spectrum = self.head(h).reshape(batch, frames, self.channels, 2, self.n_fft // 2 + 1)
        log_magnitude, phase = spectrum.permute(3, 0, 2, 4, 1).float()  # each [B, C, bins, T]
        spectrum = torch.polar(log_magnitude.exp().clamp(max=MAX_MAGNITUDE), phase).flatten(0, 1)
        window = torch.hann_window(self.n_fft, device=latent.device)
        wav = torch.istft(spectrum, self.n_fft, self.hop, window=window, center=True, length=frames * self.hop)
        return wav.reshape(batch, self.channels, -1).to(latent.dtype)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Inference: `forward` on the whole clip at once (its activations stay at the frame rate)."""
        return self(latent)
