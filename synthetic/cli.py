"""`musicgen-make-data`: write a folder of synthetic captioned music and its manifest.jsonl.

    musicgen-make-data --out data/synthetic/train --count 2000 --seed 0 --workers 2
    musicgen-make-data --out data/synthetic/heldout --count 200 --split heldout
"""
from __future__ import annotations

import argparse
import time

from .dataset import write_dataset
from .split import SPLITS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="musicgen-make-data", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--count", type=int, required=True, help="number of clips")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same bytes")
    parser.add_argument("--duration", type=float, default=10.0, help="clip length in seconds")
    parser.add_argument("--sample-rate", type=int, default=16000, help="output sample rate in Hz")
    parser.add_argument("--split", choices=SPLITS, default="train",
                        help="train never holds a held-out instrument x tempo x key combination; heldout only those")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering in parallel")
    parser.add_argument("--write-midi", action="store_true", help="also write each clip's .mid beside its .wav")
    parser.add_argument("--write-melody", action="store_true",
                        help="also write each clip's melody stem (the clip without drums) as .melody.wav, "
                             "for training melody conditioning (manifest field melody_path)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    manifest = write_dataset(args.out, args.count, args.seed, args.split, duration=args.duration,
                             sample_rate=args.sample_rate,
                             workers=args.workers, write_midi=args.write_midi,
                             write_melody=args.write_melody)
    seconds = time.perf_counter() - start
    audio_seconds = args.count * args.duration
    print(f"wrote {args.count} clips ({audio_seconds / 3600:.2f} h of audio) and {manifest} in {seconds:.1f} s "
          f"({audio_seconds / seconds:.0f}x real time)")


if __name__ == "__main__":
    main()
