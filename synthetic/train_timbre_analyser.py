"""Training the independent timbre analyser on renders of SoundFonts other than the training data's (TimGM6mb).

    musicgen-train-timbre-analyser --out checkpoints/analysers/timbre --fonts fluidr3 musescore

Reads top to bottom: render the generator's train-split pieces through each font, train the CNN on random crops
with random degradations (AdamW, cosine schedule), report accuracy on held-out-split renders of each font, and save.
`--leave-one-out` first trains one analyser per font left out and tests it on that font: the figure that says how
well the analyser carries to a font it never heard. `--ceiling-count` reports accuracy on TimGM6mb renders last,
after the analyser is fixed: it is the ceiling the evaluation prints, never a target to tune on.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from .compose import INSTRUMENTS
from .dataset import make_piece
from .render import OTHER_SOUNDFONTS, Renderer, named_soundfont, soundfont_path
from .timbre_analyser import AnalyserConfig, TimbreAnalyser
from .timbre_augment import augment

TRAINING_FONTS = ("fluidr3", "musescore", "opl3")  # csound's bank shares samples with TimGM6mb: never train on it


def render_font_clips(soundfont: str, count: int, *, seed: int, split: str, duration: float,
                      sample_rate: int) -> tuple[torch.Tensor, list[str]]:
    """Pieces 0..count-1 of a split (as `musicgen-make-data` composes them) rendered through `soundfont` (a path):
    audio [count, duration * sample_rate] and the instrument of each."""
    renderer = Renderer(sample_rate, soundfont=soundfont)
    pieces = [make_piece(seed, index, split, duration) for index in range(count)]
    audio = np.stack([renderer.render(piece.midi, duration) for piece in pieces])
    return torch.from_numpy(audio), [piece.spec.instrument for piece in pieces]


def random_crops(frames: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """[B, ..., T] -> [B, ..., length], each clip cut at its own random start."""
    starts = torch.randint(frames.shape[-1] - length + 1, (frames.shape[0],), generator=generator)
    return torch.stack([clip[..., start:start + length] for clip, start in zip(frames, starts.tolist())])


@torch.no_grad()
def degraded_features(analyser: TimbreAnalyser, audio: torch.Tensor, copies: int, *, generator: torch.Generator,
                      probability: float, batch_size: int = 32) -> torch.Tensor:
    """audio [B, N] -> log-mel [(copies + 1) * B, n_mels, frames]: the clips as they are, then `copies` times
    degraded (timbre_augment.augment), copy by copy."""
    rate = analyser.config.sample_rate
    return torch.cat([analyser.log_mel(chunk if copy == 0 else augment(chunk, rate, generator, probability))
                      for copy in range(copies + 1) for chunk in audio.split(batch_size)])


def train_analyser(audio: torch.Tensor, labels: list[str], config: AnalyserConfig | None = None, *, steps: int = 1000,
                   batch_size: int = 32, learning_rate: float = 3e-3, crop_seconds: float = 2.0, copies: int = 2,
                   augment_probability: float = 0.5, seed: int = 0) -> TimbreAnalyser:
    """audio [B, N] at `config.sample_rate`, one instrument label a clip -> a trained analyser in eval mode.

    The log-mels of each clip and of `copies` degraded copies are computed once; each step trains on random crops
    of `crop_seconds` from them (AdamW, one-cycle schedule, label smoothing)."""
    classes = list(INSTRUMENTS)
    unknown = sorted(set(labels) - set(classes))
    if unknown or audio.dim() != 2 or audio.shape[0] != len(labels):
        raise ValueError(f"need audio [B, N] and one label of {classes} a clip, got {tuple(audio.shape)}, "
                         f"{len(labels)} labels, unknown {unknown}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    analyser = TimbreAnalyser(classes, config)
    frames = degraded_features(analyser, audio, copies, generator=generator, probability=augment_probability)
    targets = torch.tensor([classes.index(label) for label in labels] * (copies + 1))
    length = min(frames.shape[-1], int(crop_seconds * analyser.config.sample_rate / analyser.config.hop_length))
    optimizer = torch.optim.AdamW(analyser.parameters(), lr=learning_rate, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps, pct_start=0.1)
    analyser.train()
    for _ in range(steps):
        rows = torch.randint(frames.shape[0], (batch_size,), generator=generator)
        logits = analyser.classify(random_crops(frames[rows], length, generator))
        loss = nn.functional.cross_entropy(logits, targets[rows], label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return analyser.eval()


def accuracy(analyser: TimbreAnalyser, audio: torch.Tensor, labels: list[str], batch_size: int = 64) -> float:
    """Fraction of clips [B, N] (at the analyser's rate) whose predicted instrument is their label."""
    rate = analyser.config.sample_rate
    predictions = [name for chunk in audio.split(batch_size) for name in analyser.predict(chunk, rate)]
    return sum(prediction == label for prediction, label in zip(predictions, labels)) / len(labels)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="musicgen-train-timbre-analyser",
                                     description="Train the independent timbre analyser on renders of other "
                                                 "SoundFonts than TimGM6mb, report its accuracy, and save it.")
    parser.add_argument("--out", required=True, help="folder for the saved analyser")
    parser.add_argument("--fonts", nargs="+", default=list(TRAINING_FONTS), choices=sorted(OTHER_SOUNDFONTS))
    parser.add_argument("--count", type=int, default=800, help="training clips a font (train split)")
    parser.add_argument("--test-count", type=int, default=200, help="test clips a font (heldout split)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds a rendered clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--leave-one-out", action="store_true", help="first train one analyser a font left out")
    parser.add_argument("--ceiling-count", type=int, default=0, help="report accuracy on this many TimGM6mb "
                                                                     "held-out renders after training (0: none)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rate = AnalyserConfig.sample_rate

    def clips(font: str, split: str, count: int) -> tuple[torch.Tensor, list[str]]:
        return render_font_clips(font, count, seed=args.seed, split=split, duration=args.duration, sample_rate=rate)

    train = {name: clips(named_soundfont(name), "train", args.count) for name in args.fonts}
    test = {name: clips(named_soundfont(name), "heldout", args.test_count) for name in args.fonts}
    options = dict(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    if args.leave_one_out:
        for left_out in args.fonts:
            rest = [name for name in args.fonts if name != left_out]
            analyser = train_analyser(torch.cat([train[name][0] for name in rest]),
                                      [label for name in rest for label in train[name][1]], **options)
            print(f"trained on {rest}: {accuracy(analyser, *test[left_out]):.3f} on {left_out} (left out)")
    analyser = train_analyser(torch.cat([train[name][0] for name in args.fonts]),
                              [label for name in args.fonts for label in train[name][1]], **options)
    for name in args.fonts:
        print(f"held-out renders of {name}: accuracy {accuracy(analyser, *test[name]):.3f}")
    analyser.save(args.out)
    print(f"saved to {args.out} after {time.monotonic() - started:.0f} s")
    if args.ceiling_count:
        ceiling = accuracy(analyser, *clips(soundfont_path(), "heldout", args.ceiling_count))
        print(f"TimGM6mb held-out renders (the ceiling, not a target): accuracy {ceiling:.3f}")


if __name__ == "__main__":
    main()
