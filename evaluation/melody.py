"""`musicgen-eval-melody`: how closely a melody-conditioned model's music follows the melodies it is given.

Held-out clips whose manifest rows name a melody stem (`melody_path`: the clip without its drums, as
`musicgen-make-data --write-melody` writes them; by default `--count` held-out clips rendered on the fly) give three
kinds of audio, each compared with the clip's stem over the first `--duration` seconds:

- with melody: the model's generation for the clip's caption with the stem as its melody;
- without melody (chance): the same caption and seed with no melody, what the caption alone gives;
- renders (ceiling): the clip itself, the mix whose stem the melody is (a clip without drums is its own stem: 1).

The comparison is the frame-wise cosine of two chromas computed the same way (musicgen/chroma.py, the model's chroma
settings, at its sample rate), averaged over frames, then over clips:

- chroma cosine, on the chroma energy (each pitch class's energy over the frame's largest, as audiocraft's
  ChromaCosineSimilarityMetric without argmax): graded, and well above zero by chance, since the harmonics and chords
  of any tonal music share pitch classes with a melody. The headline figure: it credits a generation that plays the
  melody under a louder part, which the one-hot measure counts as a miss;
- pitch-class agreement, on the one-hot chroma the model is conditioned on: the share of frames whose loudest pitch
  class is the melody's (about 1/12 for unrelated music).

    musicgen-eval-melody --model runs/lm-melody/model --data data/melody/heldout/manifest.jsonl --json melody.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from infra.audio import read_audio
from infra.manifest import MELODY_KEY, read_manifest
from musicgen.api import MusicGen
from musicgen.chroma import chroma_energy
from synthetic.dataset import write_dataset

KINDS = ("with_melody", "without_melody", "renders")
TITLES = {"with_melody": "with melody", "without_melody": "without (chance)", "renders": "renders (ceiling)"}
MEASURES = {"chroma_cosine": "chroma cosine", "pitch_class_agreement": "pitch-class agreement"}


@dataclass(frozen=True)
class MelodyClip:
    """A held-out clip: its caption, its render and its melody stem, mono [N] float32 at the model's rate."""

    path: str
    caption: str
    render: torch.Tensor
    stem: torch.Tensor


def load_clips(manifest: str | Path, count: int, sample_rate: int, duration: float) -> list[MelodyClip]:
    """The first `count` rows of a manifest with melody stems, read at sample_rate; each must last `duration` s."""
    rows = read_manifest(manifest)[:count]
    lacking = [row["path"] for row in rows if not isinstance(row.get(MELODY_KEY), str)]
    if lacking:
        raise ValueError(f"{manifest}: {len(lacking)} rows name no {MELODY_KEY} (first: {lacking[0]}); expected clips "
                         "with melody stems (musicgen-make-data --write-melody)")
    clips = []
    for row in rows:
        render = read_audio(row["path"], sample_rate, 1)[0]
        stem = read_audio(row[MELODY_KEY], sample_rate, 1)[0]
        length = min(render.shape[-1], stem.shape[-1])
        if length < round(duration * sample_rate):
            raise ValueError(f"{row['path']} and its stem last {length / sample_rate:.2f} s, shorter than the "
                             f"{duration} s compared; give a shorter --duration")
        clips.append(MelodyClip(row["path"], row.get("description", ""), render, stem))
    return clips


def similarity(reference: torch.Tensor, audio: torch.Tensor, model: MusicGen) -> dict[str, float]:
    """reference [N], audio [N'] float at the model's rate -> the mean frame-wise cosine of their chroma energies
    (chroma_cosine) and of their one-hot chromas (pitch_class_agreement) over the shorter's length, with the model's
    chroma settings."""
    settings, length = model.config.chroma, min(reference.shape[-1], audio.shape[-1])
    energies = chroma_energy(torch.stack([reference[:length], audio[:length]]).float(), sample_rate=model.sample_rate,
                             n_fft=settings.n_fft, hop_length=settings.hop_length, bins=model.lm.config.chroma_bins)
    one_hot = F.one_hot(energies.argmax(-1), energies.shape[-1]).float()
    return {"chroma_cosine": F.cosine_similarity(energies[0], energies[1], dim=-1).mean().item(),
            "pitch_class_agreement": F.cosine_similarity(one_hot[0], one_hot[1], dim=-1).mean().item()}


@torch.inference_mode()
def evaluate(model: MusicGen, clips: list[MelodyClip], *, duration: float, batch_size: int,
             seed: int) -> list[dict[str, Any]]:
    """One row per clip: its path, caption and each kind of audio's similarity to its stem (KINDS)."""
    samples = round(duration * model.sample_rate)
    rows = []
    for start in range(0, len(clips), batch_size):
        batch = clips[start:start + batch_size]
        prompts = [clip.caption for clip in batch]
        stems = [clip.stem[:samples] for clip in batch]
        generated = {
            "with_melody": model.generate_with_chroma(prompts, [stem[None] for stem in stems], model.sample_rate,
                                                      duration=duration, seed=seed, first_row=start),
            "without_melody": model.generate(prompts, duration=duration, seed=seed, first_row=start, progress=False),
            "renders": torch.stack([clip.render[:samples] for clip in batch])[:, None],
        }
        for row, (clip, stem) in enumerate(zip(batch, stems)):
            measured = {kind: similarity(stem, audio[row].mean(dim=0)[:samples], model)
                        for kind, audio in generated.items()}
            rows.append({"path": clip.path, "prompt": clip.caption, **measured})
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each kind's measures averaged over the clips."""
    return {kind: {measure: sum(row[kind][measure] for row in rows) / len(rows) for measure in MEASURES}
            for kind in KINDS}


def format_summary(summary: dict[str, dict[str, float]], clips: int, duration: float) -> str:
    """The measures (rows) of each kind of audio (columns)."""
    lines = [f"{'':<24}" + "".join(f"{TITLES[kind]:>19}" for kind in KINDS)]
    for measure, title in MEASURES.items():
        lines.append(f"{title:<24}" + "".join(f"{summary[kind][measure]:>19.3f}" for kind in KINDS))
    lines.append(f"{clips} clips, the first {duration:g} s of each, against its melody stem")
    return "\n".join(lines)


def run(model: MusicGen, data: str | None, *, count: int, duration: float, batch_size: int,
        seed: int) -> dict[str, Any]:
    """The whole evaluation on a manifest's clips, or on `count` held-out clips rendered now (`data` None)."""
    if not model.lm.config.melody:
        raise ValueError("the model is not conditioned on melodies (lm.chroma_bins is 0); give a melody model, e.g. "
                         "one fine-tuned with configs/lm/melody_finetune.yaml")
    source = data or f"{count} held-out clips rendered with seed {seed}"
    with tempfile.TemporaryDirectory() as folder:
        if data is None:
            data = write_dataset(folder, count, seed=seed, split="heldout", duration=duration,
                                 sample_rate=model.sample_rate, write_melody=True)
        clips = load_clips(data, count, model.sample_rate, duration)
    rows = evaluate(model, clips, duration=duration, batch_size=batch_size, seed=seed)
    settings = {"data": source, "clips": len(rows), "duration": duration, "seed": seed,
                "chroma": {"n_fft": model.config.chroma.n_fft, "hop_length": model.config.chroma.hop_length,
                           "bins": model.lm.config.chroma_bins, "sample_rate": model.sample_rate}}
    return {"settings": settings, "summary": summarise(rows), "clips": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="musicgen-eval-melody", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None,
                        help="a melody-conditioned checkpoint directory (default: the embedded model)")
    parser.add_argument("--data", default=None, help="manifest of clips with melody stems (default: render --count "
                                                     "held-out clips with theirs)")
    parser.add_argument("--count", type=int, default=64, help="clips to evaluate (the manifest's first)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds generated and compared per clip")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="musicgen_eval_melody.json", help="where to write all results")
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch_size < 1 or not args.duration > 0:
        parser.error("--count and --batch-size must be >= 1 and --duration > 0")
    result = run(MusicGen.from_pretrained(args.model), args.data, count=args.count, duration=args.duration,
                 batch_size=args.batch_size, seed=args.seed)
    print(format_summary(result["summary"], result["settings"]["clips"], args.duration))
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
