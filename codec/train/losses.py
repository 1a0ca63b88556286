"""Codec training losses: multi-scale mel reconstruction, hinge adversarial loss, feature matching.

The waveform L1 is `torch.nn.functional.l1_loss`; the commitment loss comes from the quantizer.
All losses return scalars; `recon` and `target` are wav [B, C, N].
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from infra.mel import MelSpectrogram, log_mel


class MultiScaleMelLoss(nn.Module):
    """Mean over FFT sizes of L1(mel magnitudes) + L1(log mels), hop n_fft // 4 at each size.

    Small FFT sizes judge timing, large ones pitch; together they cover both. Each size uses
    min(n_mels, n_fft // 4) bands so that no band is narrower than an FFT bin.
    """

    def __init__(self, sample_rate: int, n_ffts: Sequence[int] = (256, 512, 1024, 2048), n_mels: int = 64) -> None:
        super().__init__()
        if not n_ffts:
            raise ValueError("MultiScaleMelLoss needs at least one FFT size")
        self.spectrograms = nn.ModuleList(
            MelSpectrogram(sample_rate, n_fft, n_mels=min(n_mels, n_fft // 4), power=1.0) for n_fft in n_ffts)

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = recon.new_zeros((), dtype=torch.float32)
        for spectrogram in self.spectrograms:
            recon_mel, target_mel = spectrogram(recon), spectrogram(target)
            total = total + F.l1_loss(recon_mel, target_mel) + F.l1_loss(log_mel(recon_mel), log_mel(target_mel))
        return total / len(self.spectrograms)


def discriminator_hinge_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Mean over sub-discriminators of mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat)))."""
    losses = [F.relu(1 - real).mean() + F.relu(1 + fake).mean() for real, fake in zip(real_logits, fake_logits)]
    return torch.stack(losses).mean()


def generator_hinge_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Mean over sub-discriminators of mean(relu(1 - D(x_hat)))."""
    return torch.stack([F.relu(1 - fake).mean() for fake in fake_logits]).mean()


def feature_matching_loss(real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean over every layer of every sub-discriminator of |D_l(x) - D_l(x_hat)|_1 / mean|D_l(x)|.

    The real features are targets (detached); dividing by their scale weighs all layers alike.
    """
    losses = []
    for real_layers, fake_layers in zip(real_features, fake_features):
        for real, fake in zip(real_layers, fake_layers):
            real = real.detach()
            losses.append(F.l1_loss(fake, real) / (real.abs().mean() + 1e-8))
    return torch.stack(losses).mean()
