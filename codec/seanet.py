"""SEANet encoder and decoder: the convolutional halves of an EnCodec-style codec.

    encoder: wav [B, C, N] -> latent [B, D, T]     T = ceil(N / hop), hop = prod(ratios)
    decoder: latent [B, D, T] -> wav [B, C, T * hop]

Encoder: conv(kernel_size) -> for each ratio (reversed): residual blocks, ELU, strided conv
(kernel 2 x ratio, channels doubled) -> LSTM -> ELU -> conv(last_kernel_size) to `dimension`.
The decoder mirrors it with transposed convolutions. Module names and order follow EnCodec's
(`layers.N`, `block.1`, `shortcut`, `lstm`), so published weights map onto them one to one.

`SEANetDecoder.decode` (inference) runs the layers after the LSTM on DECODE_CHUNK_FRAMES frames at a time, each
with `reach` frames of context on both sides that are decoded and cut off again: the same audio as one pass up to
float rounding, with a fraction of the activations at the sample rate alive at once (a [64, 64000] tensor is 16 MB
for 2 s of audio at 32 kHz).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from .config import CodecConfig

NORMS = ("weight_norm", "none")
DECODE_CHUNK_FRAMES = 40
PAD_MODES = ("reflect", "constant", "replicate", "circular")


def apply_norm(conv: nn.Module, norm: str) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return parametrizations.weight_norm(conv) if norm == "weight_norm" else conv


def remove_norm(conv: nn.Module) -> None:
    """Fold a weight-norm parametrization into a plain weight (inference speed-up)."""
    if parametrize.is_parametrized(conv, "weight"):
        parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)


def pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """F.pad that also reflects inputs shorter than the padding (zero-extended first)."""
    if mode != "reflect" or x.shape[-1] > max(left, right):
        return F.pad(x, (left, right), mode=mode)
    extra = max(left, right) - x.shape[-1] + 1
    padded = F.pad(F.pad(x, (0, extra)), (left, right), mode=mode)
    return padded[..., : padded.shape[-1] - extra]


class PaddedConv1d(nn.Module):
    """Conv1d whose output has ceil(N / stride) frames: causal (all padding left) or centred.

    The padding is kernel - stride (with dilation), plus zeros on the right up to a multiple of
    the stride, so every input sample is seen and the decoder can restore T * stride samples.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 *, dilation: int = 1, causal: bool = False, pad_mode: str = "reflect",
                 norm: str = "weight_norm") -> None:
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.conv = apply_norm(nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation), norm)
        self.stride = stride
        self.causal = causal
        self.pad_mode = pad_mode
        self.padding_total = (kernel_size - 1) * dilation + 1 - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = -x.shape[-1] % self.stride
        if self.causal:
            left, right = self.padding_total, 0
        else:
            right = self.padding_total // 2
            left = self.padding_total - right
        return self.conv(pad1d(x, left, right + extra, self.pad_mode))


class PaddedConvTranspose1d(nn.Module):
    """ConvTranspose1d giving exactly T * stride samples: the kernel - stride overhang is trimmed
    on the right when causal, split (more on the left) otherwise."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 *, causal: bool = False, norm: str = "weight_norm") -> None:
        super().__init__()
        self.conv = apply_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride), norm)
        padding_total = kernel_size - stride
        self.trim_right = padding_total if causal else padding_total // 2
        self.trim_left = padding_total - self.trim_right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y[..., self.trim_left: y.shape[-1] - self.trim_right]


class ResidualBlock(nn.Module):
    """x + block(x): ELU, conv(k, dilation) to dim // compress, ELU, conv(1) back to dim.
    The skip is the identity, or a 1x1 convolution when `conv_shortcut`."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, compress: int, *, conv_shortcut: bool,
                 causal: bool, pad_mode: str, norm: str) -> None:
        super().__init__()
        hidden = dim // compress
        conv = dict(causal=causal, pad_mode=pad_mode, norm=norm)
        self.block = nn.Sequential(
            nn.ELU(), PaddedConv1d(dim, hidden, kernel_size, dilation=dilation, **conv),
            nn.ELU(), PaddedConv1d(hidden, dim, 1, **conv),
        )
        self.shortcut = PaddedConv1d(dim, dim, 1, **conv) if conv_shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class BottleneckLSTM(nn.Module):
    """A skip-connected LSTM over time: [B, C, T] -> [B, C, T]."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence = x.permute(2, 0, 1)
        return (self.lstm(sequence)[0] + sequence).permute(1, 2, 0)


def _residual_blocks(config: CodecConfig, dim: int) -> list[nn.Module]:
    return [
        ResidualBlock(dim, config.residual_kernel_size, config.dilation_base ** j, config.compress,
                      conv_shortcut=config.conv_shortcut, causal=config.causal, pad_mode=config.pad_mode,
                      norm=config.norm)
        for j in range(config.n_residual_layers)
    ]


def _check(config: CodecConfig) -> None:
    if not config.ratios or any(r < 1 for r in config.ratios):
        raise ValueError(f"ratios must be a non-empty list of positive ints, got {config.ratios}")
    if config.lstm_layers < 0:
        raise ValueError(f"lstm_layers must be >= 0, got {config.lstm_layers}")


class SEANetEncoder(nn.Module):
    """wav [B, channels, N] -> latent [B, dimension, ceil(N / hop)]."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        _check(config)
        conv = dict(causal=config.causal, pad_mode=config.pad_mode, norm=config.norm)
        width = config.n_filters
        layers: list[nn.Module] = [PaddedConv1d(config.channels, width, config.kernel_size, **conv)]
        for ratio in reversed(config.ratios):
            layers += _residual_blocks(config, width)
            layers += [nn.ELU(), PaddedConv1d(width, width * 2, ratio * 2, stride=ratio, **conv)]
            width *= 2
        if config.lstm_layers:
            layers.append(BottleneckLSTM(width, config.lstm_layers))
        layers += [nn.ELU(), PaddedConv1d(width, config.dimension, config.last_kernel_size, **conv)]
        self.layers = nn.Sequential(*layers)
        self.hop_length = math.prod(config.ratios)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.layers(wav)


class SEANetDecoder(nn.Module):
    """latent [B, dimension, T] -> wav [B, channels, T * hop]."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        _check(config)
        conv = dict(causal=config.causal, pad_mode=config.pad_mode, norm=config.norm)
        width = config.n_filters * 2 ** len(config.ratios)
        layers: list[nn.Module] = [PaddedConv1d(config.dimension, width, config.kernel_size, **conv)]
        if config.lstm_layers:
            layers.append(BottleneckLSTM(width, config.lstm_layers))
        for ratio in config.ratios:
            layers += [nn.ELU(), PaddedConvTranspose1d(width, width // 2, ratio * 2, ratio, causal=config.causal,
                                                       norm=config.norm)]
            width //= 2
            layers += _residual_blocks(config, width)
        layers += [nn.ELU(), PaddedConv1d(width, config.channels, config.last_kernel_size, **conv)]
        self.layers = nn.Sequential(*layers)
        self.hop_length = config.hop_length
        self.tail_start = 2 if config.lstm_layers else 1  # layers[tail_start:] upsample to the sample rate
        self.reach = tail_reach(self.layers[self.tail_start:])

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.layers(latent)

    def decode(self, latent: torch.Tensor, chunk_frames: int = DECODE_CHUNK_FRAMES) -> torch.Tensor:
        """latent [B, dimension, T] -> wav [B, channels, T * hop], as `forward`, with the upsampling layers run on
        chunk_frames frames at a time (plus `reach` frames of context each side)."""
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}")
        hidden = self.layers[: self.tail_start](latent)
        tail = self.layers[self.tail_start:]
        frames = hidden.shape[-1]
        chunks = []
        for start in range(0, frames, chunk_frames):
            end = min(start + chunk_frames, frames)
            first, last = max(start - self.reach, 0), min(end + self.reach, frames)
            wav = tail(hidden[..., first:last])
            chunks.append(wav[..., (start - first) * self.hop_length: (end - first) * self.hop_length])
        return torch.cat(chunks, dim=-1)


def tail_reach(layers: nn.Sequential) -> int:
    """The frames of input on each side that an output sample of these layers (the decoder's after its LSTM) can
    depend on, at most: from the last layer back, a convolution widens the reach by its padding and a transposed
    one (kernel 2 x stride) maps it to its input's rate, ceil(reach / stride) + 2 (its two taps and its trim)."""
    reach = 0
    for layer in reversed(layers):
        for module in reversed(list(layer.modules())):
            if isinstance(module, PaddedConv1d):
                reach += module.padding_total
            elif isinstance(module, PaddedConvTranspose1d):
                reach = -(-reach // module.conv.stride[0]) + 2
    return reach
