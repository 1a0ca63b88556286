"""Stereo as MusicGen's stereo models make it: one mono codec run on each channel, the two code streams interleaved
codebook by codebook.

    stereo = InterleavedStereoCodec(Codec.from_pretrained(mono_directory))
    codes = stereo.encode(wav)          # wav [B, 2, N] -> codes [B, 2K, T]: L0 R0 L1 R1 ... L(K-1) R(K-1)
    wav = stereo.decode(codes)          # codes [B, 2K, T] -> wav [B, 2, T * hop]: left from even rows, right odd
    codec = load_codec(directory)       # a folder of either kind: this wrapper where it says so, else the mono Codec

A saved wrapper's folder is the mono codec's own (`Codec.save_pretrained`: config.yaml, model.safetensors) with
STEREO_FILE beside it, which `load_codec` reads to wrap it again; `Codec.from_pretrained` reads the mono codec alone.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .model import Codec

STEREO_FILE = "stereo.json"
LAYOUT = "interleaved"


class InterleavedStereoCodec(nn.Module):
    """Two channels through one mono `Codec`, with Codec's interface for generation and LM training (encode, decode,
    the rates, num_codebooks = 2K, cardinality, channels = 2, weight-norm folding, save/load)."""

    channels = 2

    def __init__(self, mono: Codec) -> None:
        super().__init__()
        if mono.channels != 1:
            raise ValueError(f"the interleaved stereo codec wraps a mono codec (channels 1), got {mono.channels}")
        self.mono = mono

    @property
    def sample_rate(self) -> int:
        return self.mono.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mono.hop_length

    @property
    def frame_rate(self) -> float:
        return self.mono.frame_rate

    @property
    def cardinality(self) -> int:
        return self.mono.cardinality

    @property
    def num_codebooks(self) -> int:
        return 2 * self.mono.num_codebooks

    @property
    def decoder(self) -> nn.Module:
        """The mono codec's decoder, which decodes each channel."""
        return self.mono.decoder

    @property
    def decoder_has_weight_norm(self) -> bool:
        return self.mono.decoder_has_weight_norm

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 2, N] float at sample_rate -> codes [B, 2K, ceil(N / hop)] int64, rows L0 R0 L1 R1 ..."""
        if wav.dim() != 3 or wav.shape[1] != 2:
            raise ValueError(f"expected stereo wav [B, 2, N], got shape {tuple(wav.shape)}")
        left, right = (self.mono.encode(wav[:, channel:channel + 1]) for channel in (0, 1))
        return torch.stack([left, right], dim=2).flatten(1, 2)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, 2K, T] int64 (rows L0 R0 L1 R1 ...) -> wav [B, 2, T * hop] float32."""
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks:
            raise ValueError(f"expected codes [B, {self.num_codebooks}, T] (left and right codebooks interleaved), "
                             f"got shape {tuple(codes.shape)}")
        return torch.cat([self.mono.decode(codes[:, channel::2]) for channel in (0, 1)], dim=1)

    def remove_weight_norm(self, decoder_only: bool = False) -> InterleavedStereoCodec:
        """`Codec.remove_weight_norm` on the mono codec."""
        self.mono.remove_weight_norm(decoder_only)
        return self

    def save_pretrained(self, directory: str | Path) -> None:
        """The mono codec's folder, with STEREO_FILE saying that it runs on each channel, interleaved."""
        self.mono.save_pretrained(directory)
        (Path(directory) / STEREO_FILE).write_text(json.dumps({"layout": LAYOUT, "channels": self.channels}) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> InterleavedStereoCodec:
        """Read a folder written by `save_pretrained`."""
        directory = Path(directory)
        path = directory / STEREO_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {STEREO_FILE} in {directory}: not an interleaved stereo codec folder")
        recorded = json.loads(path.read_text())
        if recorded != {"layout": LAYOUT, "channels": cls.channels}:
            raise ValueError(f"{path} must hold {{'layout': {LAYOUT!r}, 'channels': 2}}, got {recorded}")
        return cls(Codec.from_pretrained(directory, device))


def load_codec(directory: str | Path, device: str | torch.device = "cpu") -> Codec | InterleavedStereoCodec:
    """The codec of a folder: the interleaved stereo wrapper where it holds STEREO_FILE, else the mono Codec."""
    if (Path(directory) / STEREO_FILE).is_file():
        return InterleavedStereoCodec.from_pretrained(directory, device)
    return Codec.from_pretrained(directory, device)


def output_channels(requested: int | None, channels: int) -> int:
    """The channel count a generation returns from a codec of `channels`: its own for None (or asked for by number),
    or 1, the downmix of a stereo codec's output; ValueError for any other request."""
    if requested is None:
        return channels
    if not isinstance(requested, int) or isinstance(requested, bool) or requested not in (1, channels):
        allowed = "1 (a downmix of the stereo output) or 2" if channels == 2 else channels
        raise ValueError(f"channels must be None (the model's own, {channels}) or {allowed}, got {requested!r}")
    return requested


def downmix(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """wav [B, C, N] -> [B, channels, N]: as it is when channels == C, else the mean of its channels (channels 1)."""
    if channels == wav.shape[1]:
        return wav
    if channels != 1:
        raise ValueError(f"can only downmix to 1 channel, got channels={channels} for wav of {wav.shape[1]}")
    return wav.mean(dim=1, keepdim=True)
