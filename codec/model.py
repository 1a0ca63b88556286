"""The codec: SEANet encoder -> residual vector quantizer -> SEANet decoder (or an inverse-STFT one).

    codec = Codec(CodecConfig())                 # or Codec.from_pretrained(directory)
    codes = codec.encode(wav)                    # wav [B, C, N] float32 -> codes [B, K, T] int64, T = ceil(N / hop)
    wav = codec.decode(codes)                    # codes [B, K, T] -> wav [B, C, T * hop] float32
    out = codec(wav)                             # training forward: out.audio, out.codes, out.commitment_loss, out.metrics

A checkpoint directory holds `config.yaml` (this CodecConfig) and `model.safetensors`.
`from_pretrained` also reads Hugging Face EnCodec directories (see codec/hf.py). Stereo as MusicGen's stereo
models make it, this mono codec on each channel, is codec/stereo.py's wrapper.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import parametrize

from infra.config import load_config, save_config
from infra.weights import load_weights, read_weights

from .config import CodecConfig
from .hf import codec_config_from_hf, state_dict_from_hf
from .istft_decoder import IstftDecoder
from .quantization import ResidualVectorQuantizer
from .seanet import SEANetDecoder, SEANetEncoder, remove_norm

DECODERS = {"seanet": SEANetDecoder, "istft": IstftDecoder}
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class CodecOutput:
    """audio [B, C, T * hop], codes [B, K, T] int64 (K levels used), commitment_loss scalar
    (already times commitment_weight), metrics {"usage/k", "perplexity/k", "bits/k": float}."""

    audio: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    metrics: dict[str, float]


class Codec(nn.Module):
    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SEANetEncoder(config)
        self.quantizer = ResidualVectorQuantizer(
            config.dimension, config.num_codebooks, config.cardinality, config.decay,
            kmeans_iters=config.kmeans_iters, dead_code_threshold=config.dead_code_threshold,
            quantizer_dropout=config.quantizer_dropout, commitment_weight=config.commitment_weight,
            epsilon=config.epsilon, seed=config.seed,
        )
        if config.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {sorted(DECODERS)}, got {config.decoder!r}")
        self.decoder = DECODERS[config.decoder](config)
        self.num_codebooks = config.num_codebooks

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def cardinality(self) -> int:
        return self.config.cardinality

    def set_num_codebooks(self, k: int) -> None:
        """Encode and decode with the first k levels only (a lower bitrate)."""
        if not 1 <= k <= self.config.num_codebooks:
            raise ValueError(f"num_codebooks must be in [1, {self.config.num_codebooks}], got {k}")
        self.num_codebooks = k

    def forward(self, wav: torch.Tensor) -> CodecOutput:
        """Training forward on wav [B, C, N]: in training mode the codebooks learn from this batch."""
        self._check_wav(wav)
        quantized = self.quantizer(self.encoder(wav), self.num_codebooks)
        return CodecOutput(self.decoder(quantized.quantized), quantized.codes, quantized.commitment_loss, quantized.metrics)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, C, N] float at sample_rate -> codes [B, K, ceil(N / hop)] int64."""
        self._check_wav(wav)
        return self.quantizer.encode(self.encoder(wav), self.num_codebooks)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] int64 in [0, cardinality) -> wav [B, C, T * hop] float32."""
        self._check_codes(codes)
        return self.decoder.decode(self.quantizer.decode(codes))

    def remove_weight_norm(self, decoder_only: bool = False) -> Codec:
        """Fold weight norm into plain convolution weights for faster inference: everywhere (config.norm becomes
        "none"), or in the decoder only, all that generation runs (the encoder's weights are then left as read,
        untouched in memory). `save_pretrained` folds the rest of a codec folded in part."""
        for module in (self.decoder if decoder_only else self).modules():
            remove_norm(module)
        if not decoder_only:
            self.config = dataclasses.replace(self.config, norm="none")
        return self

    @property
    def decoder_has_weight_norm(self) -> bool:
        return any(parametrize.is_parametrized(module, "weight") for module in self.decoder.modules())

    def save_pretrained(self, directory: str | Path) -> None:
        if self.config.norm != "none" and self.config.decoder == "seanet" and not self.decoder_has_weight_norm:
            self.remove_weight_norm()  # folded in part (the decoder, for generation): fold the rest to match
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_config(self.config, directory / CONFIG_FILE)
        save_file({name: tensor.contiguous() for name, tensor in self.state_dict().items()}, str(directory / WEIGHTS_FILE))

    @classmethod
    def from_weights(cls, config: CodecConfig, state_dict: dict[str, torch.Tensor]) -> Codec:
        """A Codec holding the tensors of `state_dict` themselves: built on the meta device (no memory, no
        random draws), then each tensor assigned (see `load_weights`)."""
        with torch.device("meta"):
            codec = cls(config)
        load_weights(codec, state_dict)
        return codec

    @classmethod
    def from_hf(cls, hf_config: dict, state_dict: dict[str, torch.Tensor]) -> Codec:
        """A Codec holding the weights of a transformers EncodecModel (the tensors themselves, not copies): hf_config
        is its EncodecConfig as a dict (e.g. the `audio_encoder` section of a MusicGen config.json), state_dict its
        tensors without prefix (codec/hf.py)."""
        return cls.from_weights(codec_config_from_hf(hf_config), state_dict_from_hf(state_dict))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> Codec:
        """Load this project's directory (config.yaml) or a Hugging Face EnCodec one (config.json)."""
        directory = Path(directory)
        weights = directory / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"no {WEIGHTS_FILE} in {directory} (only safetensors weights are read)")
        if (directory / CONFIG_FILE).is_file():
            config = load_config(CodecConfig, directory / CONFIG_FILE)
            return cls.from_weights(config, read_weights(weights, apart=_weight_norm_group)).to(device)
        if (directory / "config.json").is_file():
            state_dict = read_weights(weights, apart=_weight_norm_group)
            return cls.from_hf(json.loads((directory / "config.json").read_text()), state_dict).to(device)
        raise FileNotFoundError(f"no {CONFIG_FILE} (this project) or config.json (Hugging Face EnCodec) in {directory}")

    def _check_wav(self, wav: torch.Tensor) -> None:
        if wav.dim() != 3 or wav.shape[1] != self.channels:
            raise ValueError(f"expected wav [B, {self.channels}, N] (B clips of {self.channels} channels), got shape {tuple(wav.shape)}")
        if not wav.is_floating_point():
            raise ValueError(f"expected a float waveform, got dtype {wav.dtype}")
        if wav.shape[-1] < self.hop_length:
            raise ValueError(f"expected at least one hop ({self.hop_length} samples), got {wav.shape[-1]}")
        if not torch.isfinite(wav).all():
            raise ValueError("expected finite samples, got NaN or inf in wav")

    def _check_codes(self, codes: torch.Tensor) -> None:
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks:
            raise ValueError(f"expected codes [B, {self.num_codebooks}, T] (num_codebooks={self.num_codebooks}), got shape {tuple(codes.shape)}")
        if codes.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"expected integer codes (int64), got dtype {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.cardinality):
            raise ValueError(f"expected codes in [0, {self.cardinality}), got values in [{int(codes.min())}, {int(codes.max())}]")


def _weight_norm_group(name: str) -> str | None:
    """The decoder's weight-norm halves are read through a mapping of their own (`infra.weights.read_weights`)."""
    return "weight-norm halves" if is_decoder_weight_norm_half(name) else None


def is_decoder_weight_norm_half(name: str) -> bool:
    """Whether a tensor is one of the two halves of a decoder's weight-norm weight, which generation replaces
    (`remove_weight_norm(decoder_only=True)`)."""
    halves = ("parametrizations.weight.original0", "parametrizations.weight.original1", ".weight_g", ".weight_v")
    return name.startswith("decoder.") and name.endswith(halves)
