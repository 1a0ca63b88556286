"""An instrument classifier for judging generated audio, independent of any generative model:
MFCC statistics and multinomial logistic regression, trained on rendered clips and on degraded
copies of them (low-passed, noisy, shorter), so that codec artefacts do not fool it.

    python -m synthetic.analysis --out checkpoints/analysers/instrument --count 1600

The saved classifier is two small files: `instrument_classifier.safetensors` (weights and
feature normalisation) and `instrument_classifier.json` (classes and feature settings).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import soxr
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from infra.mel import MelSpectrogram, dct_matrix, log_mel

from .compose import INSTRUMENTS
from .dataset import render_clips

LOWPASS_RANGE_HZ = (2000.0, 8000.0)
NOISE_SNR_RANGE_DB = (10.0, 40.0)
SHORTEST_CROP_SECONDS = 1.0
WEIGHTS_NAME = "instrument_classifier.safetensors"
CONFIG_NAME = "instrument_classifier.json"


@dataclasses.dataclass
class FeatureConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 64
    n_mfcc: int = 20


class MfccStatistics(nn.Module):
    """audio [B, N] at `config.sample_rate` -> [B, 3 * n_mfcc]: MFCC mean and standard deviation
    over frames, and the standard deviation of their frame-to-frame change; level-independent."""

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.mel = MelSpectrogram(config.sample_rate, config.n_fft, config.hop_length, config.n_mels)
        self.register_buffer("dct", dct_matrix(config.n_mfcc, config.n_mels), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        audio = audio / audio.square().mean(dim=-1, keepdim=True).sqrt().clamp(min=1e-8) * 0.1
        mfcc = log_mel(self.mel(audio)).transpose(-1, -2) @ self.dct
        deltas = torch.diff(mfcc, dim=-2)
        return torch.cat([mfcc.mean(dim=-2), mfcc.std(dim=-2), deltas.std(dim=-2)], dim=-1)


class InstrumentClassifier(nn.Module):
    """audio [B, N] -> logits [B, len(classes)]; `predict` takes audio at any sample rate."""

    def __init__(self, classes: list[str], config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.classes = list(classes)
        self.config = config or FeatureConfig()
        self.features = MfccStatistics(self.config)
        size = 3 * self.config.n_mfcc
        self.register_buffer("feature_mean", torch.zeros(size))
        self.register_buffer("feature_std", torch.ones(size))
        self.linear = nn.Linear(size, len(self.classes))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(audio))

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.feature_mean) / self.feature_std)

    @torch.no_grad()
    def predict(self, audio: torch.Tensor | np.ndarray, sample_rate: int) -> list[str]:
        """audio: [N] or [B, N] mono at `sample_rate` (resampled with soxr when it differs) -> class names."""
        audio = torch.as_tensor(audio, dtype=torch.float32)
        if audio.dim() not in (1, 2):
            raise ValueError(f"audio must be [N] or [B, N] mono, got shape {tuple(audio.shape)}")
        batch = audio.reshape(-1, audio.shape[-1])
        if sample_rate != self.config.sample_rate:
            resampled = soxr.resample(batch.numpy().T, sample_rate, self.config.sample_rate)
            batch = torch.from_numpy(np.ascontiguousarray(resampled.T)).reshape(batch.shape[0], -1)
        return [self.classes[index] for index in self(batch).argmax(dim=-1).tolist()]

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({name: tensor.contiguous() for name, tensor in self.state_dict().items()}, directory / WEIGHTS_NAME)
        config = {"classes": self.classes, "features": dataclasses.asdict(self.config)}
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> InstrumentClassifier:
        directory = Path(directory)
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory} holds no instrument classifier: {name} is missing")
        config = json.loads((directory / CONFIG_NAME).read_text())
        classifier = cls(config["classes"], FeatureConfig(**config["features"]))
        classifier.load_state_dict(load_file(directory / WEIGHTS_NAME))
        return classifier.eval()


def degrade(audio: torch.Tensor, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """audio [B, N] -> a copy low-passed at a random cutoff and with white noise at a random SNR (per clip)."""
    spectrum = torch.fft.rfft(audio)
    frequencies = torch.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate)
    cutoff = torch.empty(audio.shape[0], 1).uniform_(*LOWPASS_RANGE_HZ, generator=generator)
    lowpassed = torch.fft.irfft(spectrum * (frequencies < cutoff), audio.shape[-1])
    snr_db = torch.empty(audio.shape[0], 1).uniform_(*NOISE_SNR_RANGE_DB, generator=generator)
    noise_rms = lowpassed.square().mean(dim=-1, keepdim=True).sqrt() * 10.0 ** (-snr_db / 20.0)
    return lowpassed + noise_rms * torch.randn(audio.shape, generator=generator)


def fit_instrument_classifier(audio: torch.Tensor, labels: list[str], classes: list[str] | None = None,
                              config: FeatureConfig | None = None, *, degraded_copies: int = 2, seed: int = 0,
                              steps: int = 300, weight_decay: float = 1e-3, batch_size: int = 64) -> InstrumentClassifier:
    """audio: [B, N] at `config.sample_rate`, one label each -> a fitted classifier.

    Trains on the clips and on `degraded_copies` degraded, randomly shortened copies of them
    (seeded by `seed`), with full-batch L-BFGS and an L2 penalty `weight_decay`.
    """
    classifier = InstrumentClassifier(classes or sorted(set(labels)), config)
    unknown = sorted(set(labels) - set(classifier.classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {classifier.classes}")
    if audio.dim() != 2 or audio.shape[0] != len(labels):
        raise ValueError(f"audio must be [B, N] with one label a clip, got {tuple(audio.shape)} and {len(labels)} labels")
    sample_rate = classifier.config.sample_rate
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        copies = [audio]
        for _ in range(degraded_copies):
            shortest = min(audio.shape[-1], int(SHORTEST_CROP_SECONDS * sample_rate))
            length = int(torch.randint(shortest, audio.shape[-1] + 1, (1,), generator=generator))
            copies.append(degrade(audio[:, :length], sample_rate, generator))
        features = torch.cat([classifier.features(chunk) for copy in copies for chunk in copy.split(batch_size)])
        classifier.feature_mean.copy_(features.mean(dim=0))
        classifier.feature_std.copy_(features.std(dim=0).clamp(min=1e-6))
        nn.init.zeros_(classifier.linear.weight)
        nn.init.zeros_(classifier.linear.bias)
    targets = torch.tensor([classifier.classes.index(label) for label in labels] * len(copies))
    optimizer = torch.optim.LBFGS(classifier.linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(classifier.logits_from_features(features), targets)
        loss = loss + weight_decay * classifier.linear.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return classifier.eval()


def accuracy(classifier: InstrumentClassifier, audio: torch.Tensor, labels: list[str], sample_rate: int) -> float:
    """Fraction of clips [B, N] whose predicted class is their label."""
    predictions = classifier.predict(audio, sample_rate)
    return sum(prediction == label for prediction, label in zip(predictions, labels)) / len(labels)


def rendered_examples(count: int, seed: int, split: str, duration: float, *, sample_rate: int,
                      workers: int) -> tuple[torch.Tensor, list[str]]:
    """Rendered clips [count, N] of a split and their instrument labels."""
    clips = render_clips(count, seed, split, duration, sample_rate=sample_rate, workers=workers)
    return torch.from_numpy(np.stack([audio for _, audio in clips])), [spec.instrument for spec, _ in clips]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the instrument classifier on rendered clips, "
                                                 "report its accuracy on held-out renders, and save it.")
    parser.add_argument("--out", required=True, help="folder for the saved classifier")
    parser.add_argument("--count", type=int, default=1600, help="training clips (train split)")
    parser.add_argument("--test-count", type=int, default=400, help="test clips (heldout split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds a clip")
    parser.add_argument("--sample-rate", type=int, default=FeatureConfig.sample_rate)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    config = FeatureConfig(sample_rate=args.sample_rate)
    audio, labels = rendered_examples(args.count, args.seed, "train", args.duration, sample_rate=args.sample_rate,
                                      workers=args.workers)
    classifier = fit_instrument_classifier(audio, labels, list(INSTRUMENTS), config)
    test_audio, test_labels = rendered_examples(args.test_count, args.seed, "heldout", args.duration,
                                                sample_rate=args.sample_rate, workers=args.workers)
    print(f"train accuracy {accuracy(classifier, audio, labels, args.sample_rate):.3f}, "
          f"held-out accuracy {accuracy(classifier, test_audio, test_labels, args.sample_rate):.3f}")
    classifier.save(args.out)
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
