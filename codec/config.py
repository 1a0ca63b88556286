"""The codec's settings: the bottom floor of the package, imported by every module of it and importing none."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class CodecConfig:
    """SEANet and RVQ settings. The defaults are the layout of EnCodec 32 kHz, MusicGen's codec."""

    RENAMED_KEYS: ClassVar[dict[str, str]] = {"n_q": "num_codebooks", "bins": "cardinality"}  # older checkpoints

    sample_rate: int = 32000
    channels: int = 1
    dimension: int = 128                 # latent size, also the codebook vector size
    n_filters: int = 64                  # channels after the first conv; doubled at each downsampling
    ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 4])  # decoder order; hop = prod
    n_residual_layers: int = 1
    dilation_base: int = 2               # residual block j has dilation dilation_base ** j
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    compress: int = 2                    # residual blocks narrow to dim // compress
    conv_shortcut: bool = False          # 1x1 conv instead of identity on residual skips
    causal: bool = False
    pad_mode: str = "reflect"
    lstm_layers: int = 2                 # 0: no LSTM at the bottleneck
    norm: str = "weight_norm"            # "weight_norm" or "none"
    num_codebooks: int = 4               # K, the residual quantizer's levels
    cardinality: int = 2048              # codes per codebook
    decay: float = 0.99                  # EMA decay of the codebooks
    kmeans_iters: int = 50               # k-means iterations on the first batch; 0: random codebooks
    dead_code_threshold: float = 2.0     # replace codes whose EMA count falls below; 0: never
    quantizer_dropout: float = 0.0       # probability that a training batch uses a random number of levels
    commitment_weight: float = 1.0
    epsilon: float = 1e-5                # Laplace smoothing of EMA counts
    seed: int = 0                        # the quantizer's random draws (the same on every rank)
    decoder: str = "seanet"              # or "istft": ConvNeXt blocks at the frame rate and an inverse STFT
    istft_width: int = 256               # the istft decoder's channels
    istft_layers: int = 8                # and its ConvNeXt blocks

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)
