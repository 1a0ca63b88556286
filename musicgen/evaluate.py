"""`musicgen-eval`: how well a model follows prompts it never saw, judged by analysers independent of it.

Prompts come from the synthetic data's held-out split: instrument x tempo x key combinations never
seen together in training. Each generation is judged by the instrument classifier (MFCC statistics
+ logistic regression trained on renders) and, for prompts with drums, by the onset-autocorrelation
tempo estimator. The model's codec is measured on held-out renders: per-level usage, SI-SNR and mel
distance. Targets (issue 8): instrument >= 80%, tempo within 8% on >= 60% of drum prompts, usage
>= 95% on every level.

    musicgen-eval --count 64 --duration 5 --json eval.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from codec.data import list_audio_paths
from codec.evaluate import evaluate_codec, format_table

from .api import DEFAULT_CHECKPOINT, MusicGen
from .synthetic.analysis import InstrumentClassifier
from .synthetic.dataset import heldout_prompts, write_dataset
from .synthetic.tempo import estimate_tempo

DEFAULT_CLASSIFIER = DEFAULT_CHECKPOINT.parent / "analysers" / "instrument"
TEMPO_TOLERANCE = 0.08
TARGETS = {"instrument_accuracy": 0.80, "tempo_within_8pct": 0.60, "min_codec_usage": 0.95}


def judge_generations(model: MusicGen, classifier: InstrumentClassifier, count: int, duration: float, batch_size: int,
                      seed: int) -> list[dict[str, Any]]:
    """Generate one clip per held-out prompt and judge its instrument (and tempo, with drums)."""
    prompts = heldout_prompts(count, seed)
    rows = []
    for start in range(0, count, batch_size):
        batch = prompts[start:start + batch_size]
        wav = model.generate([caption for caption, _ in batch], duration=duration, seed=seed + start, progress=False)
        mono = wav.mean(dim=1)
        instruments = classifier.predict(mono, model.sample_rate)
        for (caption, spec), audio, instrument in zip(batch, mono, instruments):
            row = {"prompt": caption, "instrument": spec.instrument, "predicted_instrument": instrument,
                   "bpm": spec.bpm, "drums": spec.drums}
            if spec.drums:
                row["estimated_bpm"] = estimate_tempo(audio, model.sample_rate)
            rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]], codec_results: dict[str, Any]) -> dict[str, Any]:
    drum_rows = [row for row in rows if row["drums"]]
    tempo_hits = [abs(row["estimated_bpm"] - row["bpm"]) <= TEMPO_TOLERANCE * row["bpm"] for row in drum_rows]
    summary = {
        "generations": len(rows),
        "instrument_accuracy": sum(row["instrument"] == row["predicted_instrument"] for row in rows) / len(rows),
        "drum_prompts": len(drum_rows),
        "tempo_within_8pct": sum(tempo_hits) / len(tempo_hits) if tempo_hits else float("nan"),
        "min_codec_usage": min(level["usage"] for level in codec_results["levels"]),
        "codec_si_snr_db": codec_results["si_snr_db"],
        "codec_mel_distance": codec_results["mel_distance"],
    }
    summary["targets_met"] = {name: summary[name] >= target for name, target in TARGETS.items()}
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"{'measure':<34}{'value':>10}{'target':>10}{'met':>6}"]
    for name, target in TARGETS.items():
        met = "yes" if summary["targets_met"][name] else "no"
        lines.append(f"{name:<34}{summary[name]:>10.1%}{target:>10.0%}{met:>6}")
    lines.append(f"{'codec SI-SNR (dB)':<34}{summary['codec_si_snr_db']:>10.2f}")
    lines.append(f"{'codec mel distance':<34}{summary['codec_mel_distance']:>10.3f}")
    lines.append(f"{summary['generations']} generations, {summary['drum_prompts']} with drums")
    return "\n".join(lines)


def codec_on_heldout(model: MusicGen, audio: str | None, clips: int, seed: int) -> dict[str, Any]:
    """The model's codec on held-out audio: a given folder/manifest, or `clips` fresh held-out renders."""
    codec = model.codec
    if audio is not None:
        return evaluate_codec(codec, list_audio_paths(audio))
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(folder, clips, seed=seed + 1, split="heldout", duration=10.0, sample_rate=codec.sample_rate)
        return evaluate_codec(codec, list_audio_paths(folder))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="musicgen-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the embedded model)")
    parser.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER), help="instrument classifier folder")
    parser.add_argument("--count", type=int, default=64, help="held-out prompts to generate from")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per generation")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--codec-audio", default=None, help="held-out audio for the codec metrics "
                                                           "(default: render --codec-clips held-out clips)")
    parser.add_argument("--codec-clips", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="musicgen_eval.json", help="where to write all results")
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch_size < 1 or args.codec_clips < 1 or not args.duration > 0:
        parser.error("--count, --batch-size and --codec-clips must be >= 1 and --duration > 0")
    torch.manual_seed(args.seed)
    model = MusicGen.from_pretrained(args.model)
    classifier = InstrumentClassifier.load(args.classifier)
    rows = judge_generations(model, classifier, args.count, args.duration, args.batch_size, args.seed)
    codec_results = codec_on_heldout(model, args.codec_audio, args.codec_clips, args.seed)
    summary = summarise(rows, codec_results)
    print(format_table(codec_results))
    print(format_summary(summary))
    Path(args.json).write_text(json.dumps({"summary": summary, "codec": codec_results, "generations": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
