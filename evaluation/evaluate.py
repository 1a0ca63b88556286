"""`musicgen-eval`: how well a model follows prompts it never saw, judged by analysers independent of it.

Four kinds of audio, each judged by two instrument analysers (evaluation/judge.py: the independent "timbre"
analyser, trained on other SoundFonts than the training data's, and the "classifier", trained on the same one)
and, with drums, by the onset-autocorrelation tempo estimator:

- renders: the held-out prompts' specs rendered by the data generator (what the analysers can hear at best: the
  independent analyser's score here is the ceiling printed beside every other figure);
- codec reconstructions: those renders through the model's codec (the most a generation can score through it);
- generations: the model's clips for the held-out prompts, template wordings that state BPM and key;
- paraphrases and word tempo: the model's clips for evaluation/paraphrases.py's prompts, worded unlike any
  training caption; the word-tempo prompts ask a tempo by words alone.

The model's codec is measured on held-out audio too: per-level usage, SI-SNR and mel distance.

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
from infra.spectrogram_image import spectrogram_png
from musicgen.api import DEFAULT_CHECKPOINT, MusicGen
from synthetic import timbre_analyser
from synthetic.analysis import InstrumentClassifier
from synthetic.dataset import heldout_prompts, render_clips, write_dataset

from .judge import Analyser, bucket_hits, fast_over_slow, instrument_accuracy, judge, tempo_within_tolerance
from .paraphrases import WORDINGS, Paraphrase, Wording, paraphrases, slow_fast_pairs, word_tempo_prompts

DEFAULT_CLASSIFIER = DEFAULT_CHECKPOINT.parent / "analysers" / "instrument"
JUDGED = ("renders", "codec_reconstructions", "generations", "paraphrases", "word_tempo")
INDEPENDENT = "timbre"
# The targets of issue 23; the "share" ones are fractions of the independent analyser's ceiling (its renders score).
TARGETS = {
    "generations_share_of_ceiling": 0.85,
    "reconstructions_share_of_ceiling": 0.90,
    "paraphrase_gap_to_templates": -0.10,
    "tempo_within_8pct": 0.85,
    "word_tempo_bucket_hits": 0.60,
    "fast_over_slow_pairs": 0.80,
    "min_codec_usage": 0.95,
}
MAX_MEL_DISTANCE = 1.901


@torch.inference_mode()
def generate_and_judge(model: MusicGen, analysers: dict[str, Analyser], asked: list[dict[str, Any]], *,
                       duration: float, batch_size: int, seed: int) -> list[dict[str, Any]]:
    """One clip per asked row (its "prompt"), judged; rows keep their place in the seeded sampling streams."""
    rows = []
    for start in range(0, len(asked), batch_size):
        batch = asked[start:start + batch_size]
        wav = model.generate([row["prompt"] for row in batch], duration=duration, seed=seed, first_row=start,
                             progress=False)
        rows += judge(wav.mean(dim=1), batch, model.sample_rate, analysers)
    return rows


def asked_heldout(count: int, seed: int) -> list[dict[str, Any]]:
    """The held-out prompts (template wordings stating BPM and key) as asked rows."""
    return [{"prompt": caption, "instrument": spec.instrument, "bpm": spec.bpm, "drums": spec.drums}
            for caption, spec in heldout_prompts(count, seed)]


def asked_wording(prompts: list[Paraphrase]) -> list[dict[str, Any]]:
    return [{"prompt": prompt.prompt, "instrument": prompt.instrument, "tempo_bucket": prompt.tempo_bucket,
             "drums": prompt.drums} for prompt in prompts]


@torch.inference_mode()
def judge_references(model: MusicGen, analysers: dict[str, Analyser], count: int, duration: float, *,
                     batch_size: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The analysers on the renders of the held-out prompts' specs and on the codec's reconstructions of them."""
    clips = render_clips(count, seed, split="heldout", duration=duration, sample_rate=model.sample_rate)
    asked = [{"instrument": spec.instrument, "bpm": spec.bpm, "drums": spec.drums} for spec, _ in clips]
    renders = torch.stack([torch.from_numpy(audio) for _, audio in clips])
    codec = model.codec
    reconstructions = torch.cat([codec.decode(codec.encode(batch[:, None].expand(-1, codec.channels, -1)))
                                 for batch in renders.split(batch_size)])
    reconstructions = reconstructions.mean(dim=1)[:, : renders.shape[-1]]
    return {"renders": judge(renders, asked, model.sample_rate, analysers),
            "codec_reconstructions": judge(reconstructions, asked, model.sample_rate, analysers)}


def pair_rows(rows: list[dict[str, Any]], wording: Wording) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (slow, fast) rows of evaluation/paraphrases.py's pairs, for the pairs whose two prompts were judged."""
    by_prompt = {row["prompt"]: row for row in rows}
    return [(by_prompt[slow.prompt], by_prompt[fast.prompt]) for slow, fast in slow_fast_pairs(wording)
            if slow.prompt in by_prompt and fast.prompt in by_prompt]


def summarise(judged: dict[str, list[dict[str, Any]]], codec_results: dict[str, Any],
              analysers: list[str], wording: Wording) -> dict[str, Any]:
    """Every measure of every kind of audio, and the targets with whether each is met."""
    accuracy = {source: {name: instrument_accuracy(rows, name) for name in analysers}
                for source, rows in judged.items() if rows}
    ceiling = accuracy["renders"][INDEPENDENT]
    pairs = pair_rows(judged["word_tempo"], wording)
    summary = {
        "counts": {source: len(rows) for source, rows in judged.items()},
        "instrument_accuracy": accuracy,
        "tempo_within_8pct": {source: tempo_within_tolerance(judged[source])
                              for source in ("renders", "codec_reconstructions", "generations")},
        "word_tempo_bucket_hits": bucket_hits(judged["word_tempo"]) if judged["word_tempo"] else float("nan"),
        "fast_over_slow_pairs": fast_over_slow(pairs) if pairs else float("nan"),
        "slow_fast_pairs": len(pairs),
        "min_codec_usage": min(level["usage"] for level in codec_results["levels"]),
        "codec_si_snr_db": codec_results["si_snr_db"],
        "codec_mel_distance": codec_results["mel_distance"],
    }
    values = {
        "generations_share_of_ceiling": accuracy["generations"][INDEPENDENT] / ceiling if ceiling else float("nan"),
        "reconstructions_share_of_ceiling": (accuracy["codec_reconstructions"][INDEPENDENT] / ceiling
                                             if ceiling else float("nan")),
        "paraphrase_gap_to_templates": (accuracy["paraphrases"][INDEPENDENT] - accuracy["generations"][INDEPENDENT]
                                        if "paraphrases" in accuracy else float("nan")),
        "tempo_within_8pct": summary["tempo_within_8pct"]["generations"],
        "word_tempo_bucket_hits": summary["word_tempo_bucket_hits"],
        "fast_over_slow_pairs": summary["fast_over_slow_pairs"],
        "min_codec_usage": summary["min_codec_usage"],
    }
    summary["targets"] = {name: {"value": values[name], "target": target, "met": values[name] >= target}
                          for name, target in TARGETS.items()}
    summary["targets"]["codec_mel_distance"] = {"value": summary["codec_mel_distance"], "target": MAX_MEL_DISTANCE,
                                                "met": summary["codec_mel_distance"] <= MAX_MEL_DISTANCE}
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The table of measures by kind of audio, then the targets."""
    columns = [source for source in JUDGED if source in summary["instrument_accuracy"]]
    lines = [f"{'':<26}" + "".join(f"{source.replace('codec_reconstructions', 'codec recon'):>13}"
                                  for source in columns)]
    for name in summary["instrument_accuracy"]["renders"]:
        cells = [f"{summary['instrument_accuracy'][source][name]:.1%}" for source in columns]
        lines.append(f"{'instrument, ' + name:<26}" + "".join(f"{cell:>13}" for cell in cells))
    tempo = [f"{summary['tempo_within_8pct'][source]:.1%}" if source in summary["tempo_within_8pct"] else ""
             for source in columns]
    lines.append(f"{'tempo within 8%':<26}" + "".join(f"{cell:>13}" for cell in tempo))
    counts = summary["counts"]
    lines.append("clips: " + ", ".join(f"{source} {counts[source]}" for source in columns)
                 + f"; {summary['slow_fast_pairs']} slow/fast pairs")
    lines.append(f"{'target':<34}{'value':>10}{'target':>10}{'met':>5}")
    for name, target in summary["targets"].items():
        met = "yes" if target["met"] else "no"
        lines.append(f"{name:<34}{target['value']:>10.3f}{target['target']:>10.3f}{met:>5}")
    lines.append(f"{'codec SI-SNR (dB)':<34}{summary['codec_si_snr_db']:>10.2f}")
    return "\n".join(lines)


@torch.inference_mode()
def write_spectrograms(model: MusicGen, directory: Path, *, duration: float, seed: int) -> list[Path]:
    """The first held-out prompt's render, the codec's reconstruction of it and the model's generation for it (the
    first row of the "generations" column), as log-mel PNGs in `directory`."""
    (_, audio), = render_clips(1, seed, split="heldout", duration=duration, sample_rate=model.sample_rate)
    render = torch.from_numpy(audio)[None, None].expand(-1, model.codec.channels, -1)
    reconstruction = model.codec.decode(model.codec.encode(render))[..., : render.shape[-1]]
    caption = heldout_prompts(1, seed)[0][0]
    generation = model.generate([caption], duration=duration, seed=seed, progress=False)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, wav in (("render", render), ("reconstruction", reconstruction), ("generation", generation)):
        paths.append(directory / f"{name}.png")
        paths[-1].write_bytes(spectrogram_png(wav[0], model.sample_rate))
    return paths


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
    parser.add_argument("--timbre-analyser", default=None,
                        help="independent instrument analyser folder (default: the shipped one)")
    parser.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER), help="instrument classifier folder")
    parser.add_argument("--count", type=int, default=64, help="held-out prompts to generate from")
    parser.add_argument("--wording-count", type=int, default=None,
                        help="paraphrases and word-tempo prompts to generate from (default: all of each list)")
    parser.add_argument("--wording", choices=list(WORDINGS), default="reporting",
                        help="which paraphrase and word-tempo lists: the reported ones, or those for choosing what "
                             "ships (evaluation/paraphrases.py)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per generation")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--codec-audio", default=None, help="held-out audio for the codec metrics "
                                                           "(default: render --codec-clips held-out clips)")
    parser.add_argument("--codec-clips", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quantize", choices=["int8", "int4"], default=None,
                        help="judge the model with its LM weights quantized (from_pretrained's quantize)")
    parser.add_argument("--json", default="musicgen_eval.json", help="where to write all results")
    parser.add_argument("--spectrograms", default=None, metavar="DIR",
                        help="also write log-mel PNGs of the first held-out prompt's render, its reconstruction "
                             "and its generation")
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch_size < 1 or args.codec_clips < 1 or not args.duration > 0:
        parser.error("--count, --batch-size and --codec-clips must be >= 1 and --duration > 0")
    if args.wording_count is not None and args.wording_count < 0:
        parser.error("--wording-count must be >= 0")
    torch.manual_seed(args.seed)
    model = MusicGen.from_pretrained(args.model, quantize=args.quantize)
    analysers = {INDEPENDENT: timbre_analyser.load(args.timbre_analyser),
                 "classifier": InstrumentClassifier.load(args.classifier)}
    generation = {"duration": args.duration, "batch_size": args.batch_size, "seed": args.seed}
    judged = judge_references(model, analysers, args.count, args.duration, batch_size=args.batch_size,
                              seed=args.seed)
    judged["generations"] = generate_and_judge(model, analysers, asked_heldout(args.count, args.seed), **generation)
    wording, first = WORDINGS[args.wording], slice(args.wording_count)
    judged["paraphrases"] = generate_and_judge(model, analysers, asked_wording(paraphrases(wording)[first]),
                                               **generation)
    judged["word_tempo"] = generate_and_judge(model, analysers, asked_wording(word_tempo_prompts(wording)[first]),
                                              **generation)
    codec_results = codec_on_heldout(model, args.codec_audio, args.codec_clips, args.seed)
    summary = summarise(judged, codec_results, list(analysers), wording)
    print(format_table(codec_results))
    print(format_summary(summary))
    report = {"summary": summary, "quantize": args.quantize, "wording": args.wording, "codec": codec_results, **judged}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    if args.spectrograms is not None:
        written = write_spectrograms(model, Path(args.spectrograms), duration=args.duration, seed=args.seed)
        print("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
