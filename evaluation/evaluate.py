"""`musicgen-eval`: how well a model follows prompts it never saw, judged by analysers independent of it.

Prompts come from the synthetic data's held-out split: instrument x tempo x key combinations never
seen together in training. Each generation is judged by the instrument classifier (MFCC statistics
+ logistic regression trained on renders) and, for prompts with drums, by the onset-autocorrelation
tempo estimator. The model's codec is measured on held-out renders: per-level usage, SI-SNR and mel
distance. Targets (issue 8): instrument >= 80%, tempo within 8% on >= 60% of drum prompts, usage
>= 95% on every level.

The same two analysers also judge the held-out renders of the prompts' specs and the codec's
reconstructions of those renders: the first says how far the analysers can be trusted, the second
is the most a generation can score through this codec.

    musicgen-eval --count 64 --duration 5 --json eval.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from codec.train.evaluate import evaluate_codec, format_table
from infra.manifest import list_audio_paths
from musicgen.api import DEFAULT_CHECKPOINT, MusicGen
from synthetic.analysis import InstrumentClassifier
from synthetic.compose import PieceSpec
from synthetic.dataset import heldout_prompts, render_clips, write_dataset
from synthetic.tempo import estimate_tempo

DEFAULT_CLASSIFIER = DEFAULT_CHECKPOINT.parent / "analysers" / "instrument"
TEMPO_TOLERANCE = 0.08
TARGETS = {"instrument_accuracy": 0.80, "tempo_within_8pct": 0.60, "min_codec_usage": 0.95}


def judge(audio: torch.Tensor, specs: list[PieceSpec], sample_rate: int,
          classifier: InstrumentClassifier) -> list[dict[str, Any]]:
    """One row per clip of `audio` [B, T] (mono): its predicted instrument and, with drums, its tempo."""
    rows = []
    for spec, clip, instrument in zip(specs, audio, classifier.predict(audio, sample_rate)):
        row = {"instrument": spec.instrument, "predicted_instrument": instrument, "bpm": spec.bpm, "drums": spec.drums}
        if spec.drums:
            row["estimated_bpm"] = estimate_tempo(clip, sample_rate)
        rows.append(row)
    return rows


def judge_generations(model: MusicGen, classifier: InstrumentClassifier, count: int, duration: float, *,
                      batch_size: int, seed: int) -> list[dict[str, Any]]:
    """Generate one clip per held-out prompt and judge its instrument (and tempo, with drums)."""
    prompts = heldout_prompts(count, seed)
    rows = []
    for start in range(0, count, batch_size):
        batch = prompts[start:start + batch_size]
        wav = model.generate([caption for caption, _ in batch], duration=duration, seed=seed, first_row=start,
                             progress=False)
        judged = judge(wav.mean(dim=1), [spec for _, spec in batch], model.sample_rate, classifier)
        rows += [{"prompt": caption, **row} for (caption, _), row in zip(batch, judged)]
    return rows


@torch.inference_mode()
def judge_references(model: MusicGen, classifier: InstrumentClassifier, count: int, duration: float, *, batch_size: int,
                     seed: int) -> dict[str, list[dict[str, Any]]]:
    """The analysers on the renders of the held-out prompts' specs and on the codec's reconstructions of them."""
    clips = render_clips(count, seed, split="heldout", duration=duration, sample_rate=model.sample_rate)
    specs = [spec for spec, _ in clips]
    renders = torch.stack([torch.from_numpy(audio) for _, audio in clips])
    codec = model.codec
    reconstructions = torch.cat([codec.decode(codec.encode(batch[:, None].expand(-1, codec.channels, -1)))
                                 for batch in renders.split(batch_size)])
    reconstructions = reconstructions.mean(dim=1)[:, : renders.shape[-1]]
    return {"renders": judge(renders, specs, model.sample_rate, classifier),
            "codec_reconstructions": judge(reconstructions, specs, model.sample_rate, classifier)}


def instrument_accuracy(rows: list[dict[str, Any]]) -> float:
    return sum(row["instrument"] == row["predicted_instrument"] for row in rows) / len(rows)


def tempo_within_tolerance(rows: list[dict[str, Any]]) -> float:
    hits = [abs(row["estimated_bpm"] - row["bpm"]) <= TEMPO_TOLERANCE * row["bpm"] for row in rows if row["drums"]]
    return sum(hits) / len(hits) if hits else float("nan")


def summarise(rows: list[dict[str, Any]], references: dict[str, list[dict[str, Any]]],
              codec_results: dict[str, Any]) -> dict[str, Any]:
    summary = {
        "generations": len(rows),
        "instrument_accuracy": instrument_accuracy(rows),
        "drum_prompts": sum(row["drums"] for row in rows),
        "tempo_within_8pct": tempo_within_tolerance(rows),
        "min_codec_usage": min(level["usage"] for level in codec_results["levels"]),
        "codec_si_snr_db": codec_results["si_snr_db"],
        "codec_mel_distance": codec_results["mel_distance"],
    }
    summary["targets_met"] = {name: summary[name] >= target for name, target in TARGETS.items()}
    summary["references"] = {name: {"instrument_accuracy": instrument_accuracy(reference_rows),
                                    "tempo_within_8pct": tempo_within_tolerance(reference_rows)}
                             for name, reference_rows in references.items()}
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    references = summary["references"]
    lines = [f"{'measure':<22}{'generated':>10}{'target':>8}{'met':>5}{'renders':>10}{'codec recon':>13}"]
    for name, target in TARGETS.items():
        met = "yes" if summary["targets_met"][name] else "no"
        reference_values = [f"{references[source][name]:.1%}" if name in references[source] else ""
                            for source in ("renders", "codec_reconstructions")]
        lines.append(f"{name:<22}{summary[name]:>10.1%}{target:>8.0%}{met:>5}"
                     f"{reference_values[0]:>10}{reference_values[1]:>13}")
    lines.append(f"{'codec SI-SNR (dB)':<22}{summary['codec_si_snr_db']:>10.2f}")
    lines.append(f"{'codec mel distance':<22}{summary['codec_mel_distance']:>10.3f}")
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
    rows = judge_generations(model, classifier, args.count, args.duration, batch_size=args.batch_size, seed=args.seed)
    references = judge_references(model, classifier, args.count, args.duration, batch_size=args.batch_size,
                                  seed=args.seed)
    codec_results = codec_on_heldout(model, args.codec_audio, args.codec_clips, args.seed)
    summary = summarise(rows, references, codec_results)
    print(format_table(codec_results))
    print(format_summary(summary))
    report = {"summary": summary, "codec": codec_results, "generations": rows, **references}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
