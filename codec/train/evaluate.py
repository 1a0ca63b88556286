"""Measure a codec on a set of audio files: `codec-eval --model PATH AUDIO_DIR [--json OUT]`.

Reports SI-SNR and multi-scale mel distance of the reconstructions, per-level usage, perplexity
and bits of the codes over the whole set, and encode/decode speed as multiples of real time.
Long files go through the codec in chunks of `--chunk-seconds` (cut on frame boundaries).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from codec.model import Codec
from codec.quantization import usage_metrics
from infra.audio import read_audio
from infra.manifest import list_audio_paths, probe_audio

from .losses import MultiScaleMelLoss


def si_snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> float:
    """Scale-invariant signal-to-noise ratio in dB of estimate vs. reference (any equal shapes, flattened)."""
    estimate = estimate.flatten().double() - estimate.double().mean()
    reference = reference.flatten().double() - reference.double().mean()
    target = (estimate @ reference) / (reference @ reference + eps) * reference
    noise = estimate - target
    return (10 * torch.log10((target @ target + eps) / (noise @ noise + eps))).item()


@torch.inference_mode()
def evaluate_codec(codec: Codec, paths: list[Path], chunk_seconds: float = 30.0) -> dict[str, Any]:
    """Every metric of the set of files at `paths`; unreadable files are skipped with a warning."""
    entries = probe_audio(paths)
    mel_distance = MultiScaleMelLoss(codec.sample_rate)
    chunk_samples = max(1, round(chunk_seconds * codec.frame_rate)) * codec.hop_length
    counts = torch.zeros(codec.num_codebooks, codec.cardinality)
    si_snrs, mel_distances, seconds, encode_time, decode_time = [], [], 0.0, 0.0, 0.0
    codec.decode(codec.encode(torch.zeros(1, codec.channels, codec.sample_rate)))  # warm up before timing
    for entry in entries:
        wav = read_audio(entry.path, codec.sample_rate, codec.channels)[None]
        if wav.shape[-1] < codec.hop_length:
            continue
        started = time.perf_counter()
        codes = [codec.encode(piece) for piece in wav.split(chunk_samples, dim=-1)]
        encoded = time.perf_counter()
        recon = torch.cat([codec.decode(piece) for piece in codes], dim=-1)[..., : wav.shape[-1]]
        decode_time += time.perf_counter() - encoded
        encode_time += encoded - started
        seconds += wav.shape[-1] / codec.sample_rate
        for level, level_codes in enumerate(torch.cat(codes, dim=-1).unbind(1)):
            counts[level] += torch.bincount(level_codes.flatten(), minlength=codec.cardinality).float()
        si_snrs.append(si_snr(recon, wav))
        mel_distances.append(mel_distance(recon, wav).item())
    if not si_snrs:
        raise ValueError(f"no file of the {len(paths)} given holds at least one hop ({codec.hop_length} samples)")
    levels = [dict(zip(("usage", "perplexity", "bits"), usage_metrics(level_counts).tolist())) for level_counts in counts]
    return {
        "files": len(si_snrs), "seconds": seconds, "frames": int(counts[0].sum()),
        "si_snr_db": sum(si_snrs) / len(si_snrs), "mel_distance": sum(mel_distances) / len(mel_distances),
        "levels": levels,
        "encode_realtime": seconds / max(encode_time, 1e-9), "decode_realtime": seconds / max(decode_time, 1e-9),
        "codebooks": codec.num_codebooks, "cardinality": codec.cardinality, "frame_rate": codec.frame_rate,
    }


def format_table(results: dict[str, Any]) -> str:
    lines = [f"{results['files']} files, {results['seconds']:.1f} s of audio, {results['codebooks']} codebooks "
             f"of {results['cardinality']} at {results['frame_rate']:g} Hz",
             f"usage: share of a level's codes picked at least once in {results['frames']} frames "
             f"({results['frames'] / results['cardinality']:.1f} a code)",
             f"{'SI-SNR (dB)':<22}{results['si_snr_db']:>10.2f}",
             f"{'mel distance':<22}{results['mel_distance']:>10.3f}",
             f"{'encode (x real time)':<22}{results['encode_realtime']:>10.1f}",
             f"{'decode (x real time)':<22}{results['decode_realtime']:>10.1f}",
             f"{'level':<8}{'usage':>8}{'perplexity':>12}{'bits':>8}"]
    lines += [f"{level:<8}{values['usage']:>8.1%}{values['perplexity']:>12.1f}{values['bits']:>8.2f}"
              for level, values in enumerate(results["levels"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="codec-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a codec directory (this project's export or Hugging Face EnCodec)")
    parser.add_argument("audio", help="a folder of audio files or a .jsonl manifest")
    parser.add_argument("--json", help="where to write the results (default: codec_eval.json in the current folder)")
    parser.add_argument("--num-codebooks", type=int, help="use only the first K levels")
    parser.add_argument("--chunk-seconds", type=float, default=30.0, help="longest piece encoded at once")
    args = parser.parse_args(argv)
    codec = Codec.from_pretrained(args.model).eval().remove_weight_norm()
    if args.num_codebooks:
        codec.set_num_codebooks(args.num_codebooks)
    results = evaluate_codec(codec, list_audio_paths(args.audio), args.chunk_seconds)
    print(format_table(results))
    json_path = Path(args.json or "codec_eval.json")
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
