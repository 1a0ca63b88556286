"""Speed of the synthetic-music generator and accuracy of the analysers the evaluation relies on.

    python benchmarks/synthetic_data.py --count 400 --workers 2

Prints: rendering speed as a multiple of real time (WAV writing included); the instrument
classifier's accuracy on held-out renders, clean and degraded (low-pass and noise); the share
of held-out drum clips whose estimated tempo is within 8% of the truth.
"""
import argparse
import os
import tempfile
import time

import numpy as np
import torch

from synthetic.analysis import accuracy, degrade, fit_instrument_classifier, rendered_examples
from synthetic.compose import INSTRUMENTS
from synthetic.dataset import render_clips, write_dataset
from synthetic.tempo import estimate_tempo


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="clips for the speed and tempo measurements")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--classifier-count", type=int, default=1600, help="training clips for the classifier")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        start, cpu_start = time.perf_counter(), cpu_seconds()
        write_dataset(folder, args.count, seed=0, duration=args.duration, workers=args.workers)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    audio_seconds = args.count * args.duration
    print(f"rendering: {audio_seconds / seconds:.0f}x real time with {args.workers} workers "
          f"({args.count} clips of {args.duration:g} s in {seconds:.1f} s); "
          f"{audio_seconds / cpu:.0f}x real time per CPU core fully used")

    clips = [(spec, audio) for spec, audio in render_clips(args.count, 1, "heldout", args.duration, workers=args.workers)
             if spec.drums]
    errors = np.array([abs(estimate_tempo(torch.from_numpy(audio), 16000) - spec.bpm) / spec.bpm for spec, audio in clips])
    print(f"tempo: {np.mean(errors < 0.08):.1%} of {len(clips)} held-out drum clips within 8%")

    audio, labels = rendered_examples(args.classifier_count, 0, "train", 5.0, sample_rate=16000, workers=args.workers)
    classifier = fit_instrument_classifier(audio, labels, list(INSTRUMENTS))
    test_audio, test_labels = rendered_examples(args.count, 1, "heldout", 5.0, sample_rate=16000, workers=args.workers)
    degraded = degrade(test_audio, 16000, torch.Generator().manual_seed(1))
    print(f"instrument classifier: held-out accuracy {accuracy(classifier, test_audio, test_labels, 16000):.1%} clean, "
          f"{accuracy(classifier, degraded, test_labels, 16000):.1%} degraded ({len(test_labels)} clips)")


if __name__ == "__main__":
    main()
