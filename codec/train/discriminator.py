"""Multi-scale STFT discriminator, as in EnCodec (Défossez et al., 2022, section 3.4).

Each scale takes the complex STFT of the waveform (real and imaginary parts as channels, time x
frequency as the image) through weight-normalised 2D convolutions that dilate along time and
stride along frequency, and ends in a map of real/fake logits. The hidden activations are the
features that feature matching compares.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def _conv(in_channels: int, out_channels: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1),
          *, dilation: tuple[int, int] = (1, 1)) -> nn.Conv2d:
    padding = ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)
    return weight_norm(nn.Conv2d(in_channels, out_channels, kernel, stride=stride, dilation=dilation, padding=padding))


class STFTDiscriminator(nn.Module):
    """wav [B, C, N] -> (logits [B, 1, frames, bins'], features: list of [B, filters, frames, bins_l]).

    The STFT has window n_fft, hop n_fft // 4, no centering, and is normalised; it needs N >= n_fft.
    """

    def __init__(self, channels: int, n_fft: int, filters: int = 32, dilations: Sequence[int] = (1, 2, 4),
                 *, kernel: tuple[int, int] = (3, 9)) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [_conv(2 * channels, filters, kernel)]
        convs += [_conv(filters, filters, kernel, stride=(1, 2), dilation=(dilation, 1)) for dilation in dilations]
        convs.append(_conv(filters, filters, (3, 3)))
        self.convs = nn.ModuleList(convs)
        self.to_logits = _conv(filters, 1, (3, 3))
        self.activation = nn.LeakyReLU(0.2)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, C, N] -> [B, 2C, frames, n_fft // 2 + 1]: real parts of all channels, then imaginary parts."""
        batch, channels, samples = wav.shape
        if samples < self.n_fft:
            raise ValueError(f"the discriminator's STFT needs at least n_fft={self.n_fft} samples, got {samples}")
        spec = torch.stft(wav.reshape(batch * channels, samples).float(), self.n_fft, self.hop_length,
                          window=self.window, center=False, normalized=True, return_complex=True)
        spec = spec.reshape(batch, channels, *spec.shape[-2:]).transpose(-1, -2)
        return torch.cat([spec.real, spec.imag], dim=1)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hidden = self.spectrogram(wav)
        features = []
        for conv in self.convs:
            hidden = self.activation(conv(hidden))
            features.append(hidden)
        return self.to_logits(hidden), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """One STFTDiscriminator per FFT size: wav [B, C, N] -> (list of logits, list of feature lists)."""

    def __init__(self, channels: int, n_ffts: Sequence[int] = (1024, 2048, 512), filters: int = 32,
                 dilations: Sequence[int] = (1, 2, 4)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(channels, n_fft, filters=filters, dilations=dilations) for n_fft in n_ffts)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, features = [], []
        for discriminator in self.discriminators:
            scale_logits, scale_features = discriminator(wav)
            logits.append(scale_logits)
            features.append(scale_features)
        return logits, features
