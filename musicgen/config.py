"""The settings of the LM and of generation: the bottom floor of the package, importing nothing of it.

    MusicGenConfig ─ lm: LMConfig (sizes)  ─ pattern: PatternConfig (codebook interleaving)
                   ─ generation: GenerationDefaults (duration + Sampling: how tokens are drawn)
                   ─ chroma: ChromaConfig (a melody's STFT, for an LM with lm.chroma_bins > 0)
                   ─ text_encoder: "" (the checkpoint's text_encoder/ folder) or a packaged encoder's name ("minilm")
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

ACTIVATION_NAMES = ("gelu", "relu")
ATTENTION_BACKENDS = ("sdpa", "xformers")
POSITION_ENCODINGS = ("sinusoidal", "rope")
PACKAGED_TEXT_ENCODERS = ("minilm",)  # musicgen/sentence_encoder.py's PACKAGES


def is_number(value) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class LMConfig:
    """Sizes of the LM. `cardinality` codes per codebook; the embeddings hold one more entry, the special token
    `cardinality`."""

    RENAMED_KEYS: ClassVar[dict[str, str]] = {"card": "cardinality"}  # older checkpoints

    num_codebooks: int = 4
    cardinality: int = 2048
    dim: int = 1024
    num_heads: int = 16
    num_layers: int = 24
    ffn_dim: int = 4096
    condition_dim: int = 768
    max_positions: int = 2048  # the steps of a token sequence; prefix rows (chroma, or text) come on top
    activation: str = "gelu"
    dropout: float = 0.0
    attention_backend: str = "sdpa"
    position_encoding: str = "sinusoidal"  # or "rope" (rotary, relative offsets); published weights use sinusoidal
    beat_clock: bool = False  # the tempo a prompt states, as the beat's phase at every step (not in published weights)
    tempo_head: bool = False  # with beat_clock: the tempo of a prompt that states none, inferred from its words
    cross_attention: bool = True  # False: no cross-attention; the text's rows come before the tokens instead
    chroma_bins: int = 0  # > 0: melody-conditioned, a chroma of that many bins projected into rows before the tokens
    chroma_frames: int = 0  # with chroma_bins: the chroma rows, a melody's chroma tiled or cut to that many
    chroma_stride: float = 0.0  # > 0: no prefix; step s's input summed with chroma row (s + 1) / chroma_stride

    def __post_init__(self) -> None:
        for name in ("num_codebooks", "cardinality", "dim", "num_heads", "num_layers", "ffn_dim", "condition_dim",
                     "max_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"lm.{name} must be an integer >= 1, got {value!r}")
        for name in ("chroma_bins", "chroma_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"lm.{name} must be an integer >= 0, got {value!r}")
        if not is_number(self.chroma_stride) or not math.isfinite(self.chroma_stride) or self.chroma_stride < 0:
            raise ValueError(f"lm.chroma_stride must be a finite number >= 0, got {self.chroma_stride!r}")
        if self.chroma_stride and not self.chroma_bins:
            raise ValueError("lm.chroma_stride sums each step's input with the chroma row of its time: it needs a "
                             "melody (lm.chroma_bins > 0)")
        if (self.chroma_bins > 0) != (self.chroma_frames > 0):
            raise ValueError("a melody-conditioned LM needs both lm.chroma_bins and lm.chroma_frames > 0 (neither "
                             f"for one without), got {self.chroma_bins} and {self.chroma_frames}")
        if self.dim % self.num_heads:
            raise ValueError(f"lm.dim ({self.dim}) must be divisible by lm.num_heads ({self.num_heads})")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"lm.activation must be one of {ACTIVATION_NAMES}, got {self.activation!r}")
        if self.attention_backend not in ATTENTION_BACKENDS:
            raise ValueError(f"lm.attention_backend must be one of {ATTENTION_BACKENDS}, got {self.attention_backend!r}")
        if self.position_encoding not in POSITION_ENCODINGS:
            raise ValueError(f"lm.position_encoding must be one of {POSITION_ENCODINGS}, got {self.position_encoding!r}")
        if self.position_encoding == "rope" and self.head_dim % 2:
            raise ValueError(f"lm.position_encoding 'rope' needs an even head dimension, got {self.head_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lm.dropout must be in [0, 1), got {self.dropout!r}")
        if self.tempo_head and not self.beat_clock:
            raise ValueError("lm.tempo_head feeds the beat clock: it needs lm.beat_clock true")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def melody(self) -> bool:
        """Whether the LM is conditioned on a melody's chroma."""
        return self.chroma_bins > 0


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn. use_sampling=False (or temperature 0) is greedy; top_k=0 and top_p=0 disable those filters."""

    use_sampling: bool = True
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    cfg_coef: float = 3.0

    def __post_init__(self) -> None:
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0, got {self.top_k!r}")
        if not is_number(self.top_p) or not 0.0 <= self.top_p <= 1.0:
            raise ValueError(f"top_p must be in [0, 1], got {self.top_p!r}")
        if not is_number(self.temperature) or not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if not is_number(self.cfg_coef) or not math.isfinite(self.cfg_coef):
            raise ValueError(f"cfg_coef must be a finite number, got {self.cfg_coef!r}")

    @property
    def guided(self) -> bool:
        return self.cfg_coef != 1.0

    @property
    def greedy(self) -> bool:
        return not self.use_sampling or self.temperature == 0


@dataclass
class PatternConfig:
    """A codebook pattern by name (parallel, delay, flatten, valley, partial_flatten) and its provider options."""

    name: str = "delay"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationDefaults(Sampling):
    """What `generate` uses for the arguments it is not given: a duration, and sampling (Sampling's defaults)."""

    duration: float = 10.0


@dataclass
class ChromaConfig:
    """How a melody becomes chroma (musicgen/chroma.py), as transformers' MusicgenMelodyFeatureExtractor does it: an
    STFT of n_fft points every hop_length samples, at the codec's rate, over the first max_seconds of the melody."""

    n_fft: int = 16384
    hop_length: int = 4096
    max_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("n_fft", "hop_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"chroma.{name} must be an integer >= 1, got {value!r}")
        if not is_number(self.max_seconds) or not math.isfinite(self.max_seconds) or self.max_seconds <= 0:
            raise ValueError(f"chroma.max_seconds must be a finite number of seconds > 0, got {self.max_seconds!r}")


@dataclass
class MusicGenConfig:
    """text_encoder: "" for the encoder saved in the checkpoint's text_encoder/ folder, or the name of a pretrained
    encoder installed as a package ("minilm"), whose weights the checkpoint does not copy."""

    lm: LMConfig = field(default_factory=LMConfig)
    pattern: PatternConfig = field(default_factory=PatternConfig)
    generation: GenerationDefaults = field(default_factory=GenerationDefaults)
    text_encoder: str = ""
    chroma: ChromaConfig = field(default_factory=ChromaConfig)

    def __post_init__(self) -> None:
        if self.text_encoder not in ("", *PACKAGED_TEXT_ENCODERS):
            raise ValueError(f"text_encoder must be '' (the text_encoder/ folder) or one of {PACKAGED_TEXT_ENCODERS}, "
                             f"got {self.text_encoder!r}")
