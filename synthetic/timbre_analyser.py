"""The independent timbre analyser: which of the synthetic generator's instruments a clip holds, judged by a small
CNN over log-mel frames that never heard the training data's SoundFont (TimGM6mb). It is trained on renders of
other General MIDI fonts with degraded copies (synthetic/timbre_augment.py; training in
synthetic/train_timbre_analyser.py), so its accuracy on TimGM6mb renders is an honest ceiling for any score it gives.

    analyser = load()                                   # the shipped one, checkpoints/analysers/timbre
    analyser.predict(audio, sample_rate)                # audio [N] or [B, N] -> ["piano", ...]

Saved as two small files: `timbre_analyser.safetensors` (weights) and `timbre_analyser.json` (classes, settings).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from infra.audio import resample
from infra.files import atomic_write
from infra.mel import MelSpectrogram, log_mel

WEIGHTS_NAME = "timbre_analyser.safetensors"
CONFIG_NAME = "timbre_analyser.json"
SHORTEST_INPUT_SECONDS = 0.1


@dataclasses.dataclass
class AnalyserConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    channels: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.2


def conv_block(inputs: int, outputs: int) -> nn.Sequential:
    """[B, inputs, F, T] -> [B, outputs, F / 2, T / 2]: a 3x3 convolution with batch norm, then 2x2 max pooling."""
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(),
                         nn.MaxPool2d(2, ceil_mode=True))


class TimbreAnalyser(nn.Module):
    """audio [B, N] at `config.sample_rate` -> logits [B, len(classes)]; `predict` takes audio at any sample rate.

    Level- and EQ-independent (see `classify`); the convolutions see [B, 1, n_mels, frames], the head averages the
    last block's features over time and reads them per mel region.
    """

    def __init__(self, classes: list[str], config: AnalyserConfig | None = None) -> None:
        super().__init__()
        self.classes = list(classes)
        self.config = config or AnalyserConfig()
        self.mel = MelSpectrogram(self.config.sample_rate, self.config.n_fft, self.config.hop_length,
                                  self.config.n_mels)
        self.input_norm = nn.BatchNorm2d(1)
        widths = (1, *self.config.channels)
        self.blocks = nn.Sequential(*(conv_block(a, b) for a, b in zip(widths, widths[1:])))
        regions = math.ceil(self.config.n_mels / 2 ** len(self.config.channels))
        self.head = nn.Sequential(nn.Dropout(self.config.dropout), nn.Linear(widths[-1] * regions, len(self.classes)))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.classify(self.log_mel(audio))

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, N] -> log-mel [B, n_mels, frames] of the clip scaled to -20 dBFS RMS (so the log floor sits at
        the same depth below every clip)."""
        audio = audio / audio.square().mean(dim=-1, keepdim=True).sqrt().clamp(min=1e-8) * 0.1
        return log_mel(self.mel(audio))

    def classify(self, frames: torch.Tensor) -> torch.Tensor:
        """log-mel [B, n_mels, frames] -> logits [B, len(classes)]. Each band's mean over time is taken away first
        (mean normalisation, as for cepstra): a static EQ, or one font's colouring, does not reach the convolutions,
        only how each band moves around its mean does."""
        frames = frames - frames.mean(dim=-1, keepdim=True)
        features = self.blocks(self.input_norm(frames.unsqueeze(1)))  # [B, C, F', T']
        return self.head(features.mean(dim=-1).flatten(1))

    @torch.no_grad()
    def predict(self, audio: torch.Tensor | np.ndarray, sample_rate: int) -> list[str]:
        """audio: [N] or [B, N] mono at `sample_rate` (resampled with soxr when it differs) -> class names."""
        if self.training:
            raise RuntimeError("predict needs the analyser in eval mode (call .eval() after training)")
        batch = resample(checked_audio(audio, sample_rate), sample_rate, self.config.sample_rate)
        return [self.classes[index] for index in self(batch).argmax(dim=-1).tolist()]

    def save(self, directory: str | Path) -> None:
        """Writes WEIGHTS_NAME and CONFIG_NAME into `directory` (created if missing), each atomically."""
        weights = {name: tensor.contiguous() for name, tensor in self.state_dict().items()}
        atomic_write(Path(directory) / WEIGHTS_NAME, lambda temporary: save_file(weights, temporary))
        saved = json.dumps({"classes": self.classes, "config": dataclasses.asdict(self.config)}, indent=2)
        atomic_write(Path(directory) / CONFIG_NAME, lambda temporary: temporary.write_text(saved + "\n"))


def checked_audio(audio: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
    """audio [N] or [B, N] as a float32 [B, N] tensor; ValueError for what the analyser cannot judge."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer number of Hz, got {sample_rate!r}")
    audio = torch.as_tensor(audio, dtype=torch.float32)
    if audio.dim() not in (1, 2):
        raise ValueError(f"audio must be [N] or [B, N] mono, got shape {tuple(audio.shape)}")
    batch = audio if audio.dim() == 2 else audio[None]
    if batch.shape[0] == 0 or batch.shape[-1] < SHORTEST_INPUT_SECONDS * sample_rate:
        raise ValueError(f"audio must hold at least one clip of {SHORTEST_INPUT_SECONDS} s or more, "
                         f"got shape {tuple(audio.shape)} at {sample_rate} Hz")
    if not torch.isfinite(batch).all():
        raise ValueError("audio holds NaN or infinite samples")
    return batch


def load(directory: str | Path | None = None) -> TimbreAnalyser:
    """The analyser saved in `directory` (default: the shipped one, `default_directory()`), in eval mode."""
    directory = Path(directory) if directory is not None else default_directory()
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} holds no timbre analyser: {name} is missing")
    saved = json.loads((directory / CONFIG_NAME).read_text())
    config = AnalyserConfig(**{**saved["config"], "channels": tuple(saved["config"]["channels"])})
    analyser = TimbreAnalyser(saved["classes"], config)
    analyser.load_state_dict(load_file(directory / WEIGHTS_NAME))
    return analyser.eval()


def default_directory() -> Path:
    """checkpoints/analysers/timbre, shipped in the wheel as package data of `musicgen_checkpoints`."""
    return Path(str(importlib.resources.files("musicgen_checkpoints") / "analysers" / "timbre"))
