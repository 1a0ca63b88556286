"""musicgen-generate: text prompts (and optionally a recording to continue, or melodies to follow) in, one audio file
per prompt out.

Prints one JSON line per written file on stdout: {"path", "prompt", "seconds", "sample_rate", "seed"}.
Exit status: 0 on success, 2 on bad arguments, 1 on a runtime failure (reported in one line on stderr).
Prompt i of the list (from 0) samples from its own random stream, seeded from (seed, i): a file's audio
depends on the seed and its prompt's place in the list only, never on --batch-size or the prompts batched
with it; every line reports the one seed, and the same list with that seed gives the same files. Except for a
melody model: its text is a prefix padded to the batch's longest prompt, as in transformers and audiocraft, so its
files are independent of one another at --batch-size 1 only.
torch and the model are imported only once the arguments are checked, so bad arguments fail at once.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import sys
from pathlib import Path

PROGRAM = "musicgen-generate"
FORMATS = ("wav", "flac")
NAME_LENGTH = 60
EXAMPLES = """examples:
  musicgen-generate --text "lo-fi piano with soft drums" --duration 8
  musicgen-generate --text "epic orchestral" --text "slow blues guitar" --out-dir songs --seed 1
  musicgen-generate --prompts-file prompts.txt --batch-size 4 --out-dir songs --format flac
  musicgen-generate --text "ambient pads" --duration 120          # longer than the model's context: sliding windows
  musicgen-generate --text "add drums" --continue-from riff.wav --duration 20 --out riff-drums.wav
  musicgen-generate --text "happy rock" --text "sad jazz" --melody bach.mp3 --model facebook/musicgen-melody
  musicgen-generate --unconditional 4 --model small    # audiocraft's short name, from the Hugging Face cache
"""


class UserError(Exception):
    """A failure the user can mend (missing model, unreadable audio, ...): one line on stderr, exit status 1."""


class BadArgument(UserError):
    """An argument the model turns out not to take (a stride longer than its window, ...): exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Generate music from text with a MusicGen model.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument("--text", action="append", help="a text prompt (repeat for several)")
    prompts.add_argument("--prompts-file", type=Path, metavar="FILE",
                         help="a file with one prompt a line (blank lines skipped)")
    prompts.add_argument("--unconditional", type=_positive_int, metavar="N", help="N files generated without text")
    add("--batch-size", type=_positive_int, default=4, metavar="N", help="prompts generated together (default 4)")
    add("--duration", type=_positive_float, metavar="SECONDS",
        help="seconds of each file, a continued recording included (default: the model's, often 10)")
    add("--stride", type=_positive_float, metavar="SECONDS",
        help="past the model's context, seconds between the starts of the windows (default: 18/30 of a window)")
    add("--model", metavar="DIR_OR_ID", help="a checkpoint directory, ours or a Hugging Face MusicGen one, or a hub "
                                             "id (facebook/musicgen-small) or audiocraft's short name (small) "
                                             "downloaded to the Hugging Face cache (default: checkpoints/default)")
    outputs = parser.add_mutually_exclusive_group()
    outputs.add_argument("--out", type=Path, metavar="FILE", help="the output file (.wav or .flac), for one prompt")
    outputs.add_argument("--out-dir", type=Path, default=Path("."), metavar="DIR",
                         help="folder for files named after the prompts (default .)")
    add("--format", choices=FORMATS, help="file format with --out-dir (default wav)")
    add("--force", action="store_true", help="overwrite existing files")
    add("--seed", type=_non_negative_int, metavar="N",
        help="random seed; prompt i of the list samples from (seed, i) at any --batch-size (default: random, printed)")
    add("--top-k", type=_non_negative_int, metavar="K", help="sample from the k likeliest tokens (0: all)")
    add("--top-p", type=_probability, metavar="P", help="sample from the fewest tokens of this mass (0: off)")
    add("--temperature", type=_non_negative_float, metavar="T", help="sampling temperature (0: greedy)")
    add("--cfg", type=_finite_float, metavar="COEF", help="classifier-free guidance coefficient (1: none)")
    add("--greedy", action="store_true", help="take the likeliest token instead of sampling")
    add("--continue-from", type=Path, metavar="AUDIO_FILE", help="continue this recording (resampled with soxr)")
    add("--melody", type=Path, action="append", metavar="AUDIO_FILE",
        help="a melody model follows this recording's chroma: one for every prompt, or one per prompt in order")
    add("--downbeat", type=_non_negative_float, default=0.0, metavar="SECONDS",
        help="with --continue-from: where in the recording a bar starts, for a model with a beat clock (default 0)")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: CUDA if available")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--int8", action="store_true", help="int8 weight-only LM layers: faster on the CPU, not bit-exact")
    weights.add_argument("--int4", action="store_true",
                         help="int4 weight-only LM layers (a scale and zero point per 64 inputs): least memory, not bit-exact")
    add("--normalize", action="store_true", help="scale every file to a -1 dBFS peak")
    add("--quiet", action="store_true", help="no progress bar")
    return parser


def _number(parse, check, expected: str):
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not check(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return convert


_positive_int = _number(int, lambda value: value > 0, "an integer > 0")
_non_negative_int = _number(int, lambda value: value >= 0, "an integer >= 0")
_positive_float = _number(float, lambda value: math.isfinite(value) and value > 0, "a number > 0")
_non_negative_float = _number(float, lambda value: math.isfinite(value) and value >= 0, "a number >= 0")
_finite_float = _number(float, math.isfinite, "a finite number")
_probability = _number(float, lambda value: 0 <= value <= 1, "a number in [0, 1]")


def read_prompts(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The prompts from --text or --prompts-file, N empty (unconditional) ones for --unconditional N, one for a bare
    --continue-from."""
    if args.text is not None:
        return args.text
    if args.unconditional is not None:
        return [""] * args.unconditional
    if args.prompts_file is not None:
        try:
            lines = args.prompts_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            parser.error(f"cannot read --prompts-file {args.prompts_file}: {error}")
        prompts = [line.strip() for line in lines if line.strip()]
        if not prompts:
            parser.error(f"--prompts-file {args.prompts_file} holds no prompts")
        return prompts
    if args.continue_from is not None:
        return [""]
    parser.error("give --text (or --prompts-file, or --unconditional N), or --continue-from to continue a recording "
                 "without text")


def output_paths(args: argparse.Namespace, prompts: list[str], parser: argparse.ArgumentParser) -> list[Path]:
    """One path per prompt: --out, or names from the prompts in --out-dir (-2, -3, ... for repeats)."""
    if args.out is not None:
        if len(prompts) != 1:
            parser.error(f"--out names one file but there are {len(prompts)} prompts; use --out-dir")
        suffix = args.out.suffix.lower().lstrip(".")
        if suffix not in FORMATS or args.format not in (None, suffix):
            parser.error(f"--out must end in .wav or .flac (and agree with --format), got {args.out}")
        return [args.out]
    extension = args.format or FORMATS[0]
    paths, seen = [], {}
    for prompt in prompts:
        if args.continue_from is None:
            name = file_name(prompt) or "unconditional"
        else:
            name = f"{args.continue_from.stem}-{file_name(prompt) or 'continued'}"
        seen[name] = seen.get(name, 0) + 1
        paths.append(args.out_dir / (name + (f"-{seen[name]}" if seen[name] > 1 else "") + f".{extension}"))
    return paths


def file_name(prompt: str) -> str:
    """A file name from a prompt: lower case words joined by '-', at most NAME_LENGTH characters."""
    name = re.sub(r"[\W_]+", "-", prompt.lower()).strip("-")
    return name[:NAME_LENGTH].rstrip("-")


def check_outputs(paths: list[Path], parser: argparse.ArgumentParser) -> None:
    """Before anything is generated: every output's folder is a folder we may write in, or can be made in one."""
    for folder in sorted({path.parent for path in paths}):
        existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
        if not existing.is_dir():
            parser.error(f"cannot write into {folder}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            parser.error(f"cannot write into {folder}: {existing} is not writable")


def check_melodies(args: argparse.Namespace, count: int, parser: argparse.ArgumentParser) -> None:
    """--melody: one for all `count` prompts, or one each; not with --continue-from."""
    if args.melody is None:
        return
    if args.continue_from is not None:
        parser.error("--melody and --continue-from do not go together: a melody conditions a new clip")
    if len(args.melody) not in (1, count):
        parser.error(f"give one --melody for all {count} prompts, or one per prompt in order; got {len(args.melody)}")


def check_input_files(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The --continue-from and --melody files exist, and are files."""
    given = [("--continue-from", args.continue_from)] + [("--melody", path) for path in args.melody or []]
    for option, path in given:
        if path is not None and not path.is_file():
            parser.error(f"no such file: {path}" if not path.exists()
                         else f"{option} must be an audio file, got the folder {path}")


def check_tempi(prompts: list[str], parser: argparse.ArgumentParser) -> None:
    """A tempo a prompt states must be one, and musical (musicgen/beat_clock.py), before the model loads."""
    from .beat_clock import stated_bpm

    for prompt in prompts:
        try:
            stated_bpm(prompt)
        except ValueError as error:
            parser.error(str(error))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.downbeat and args.continue_from is None:
        parser.error("--downbeat places the bars of a --continue-from recording; give --continue-from")
    prompts = read_prompts(args, parser)
    paths = output_paths(args, prompts, parser)
    check_outputs(paths, parser)
    check_melodies(args, len(prompts), parser)
    check_input_files(args, parser)
    check_tempi(prompts, parser)
    try:
        return generate_files(args, prompts, paths)
    except UserError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, BadArgument) else 1
    except KeyboardInterrupt:
        print(f"{PROGRAM}: interrupted; the files already written are kept", file=sys.stderr)
        return 130


def generate_files(args: argparse.Namespace, prompts: list[str], paths: list[Path]) -> int:
    """Generate and write every prompt's file, batch after batch, printing a JSON line per file."""
    existing = [path for path in paths if path.exists()]
    if existing and not args.force:
        more = f" (and {len(existing) - 1} more of the output files)" if len(existing) > 1 else ""
        raise UserError(f"{existing[0]} exists{more}; pass --force to overwrite")
    recording = _read_audio(args.continue_from, "--continue-from") if args.continue_from is not None else None
    melodies = _read_melodies(args.melody or [], len(prompts))
    model = _load_model(args)
    try:
        model.check_lengths(args.duration, args.stride)
    except ValueError as error:
        raise BadArgument(str(error)) from error
    if recording is not None:
        _check_continuation_fits(recording, args.duration or model.config.generation.duration, args.downbeat)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    starts = range(0, len(prompts), args.batch_size)
    written: list[Path] = []
    for number, start in enumerate(starts):
        batch = range(start, min(start + args.batch_size, len(prompts)))
        try:
            _generate_batch(model, args, [prompts[index] for index in batch], [paths[index] for index in batch],
                            recording=recording, melodies=melodies, seed=seed, written=written, first_row=start)
        except Exception as error:
            message = (f"batch {number + 1}/{len(starts)} (prompts {start + 1}-{batch.stop} of {len(prompts)}, "
                       f"from {prompts[start]!r}) failed: {error}; kept the files written so far: {len(written)}")
            if _is_user_error(error):
                raise UserError(message) from error
            print(f"{PROGRAM}: error: {message}", file=sys.stderr)
            raise
    return 0


def _generate_batch(model, args: argparse.Namespace, prompts: list[str], paths: list[Path], *, recording, melodies,
                    seed: int, written: list[Path], first_row: int) -> None:
    """Generate one batch, prompts first_row, first_row + 1, ... of the list, write its files, print their JSON lines,
    and append each written path to `written`. melodies: None, or a melody [C, N] for every prompt of the list, and
    their rate."""
    options = {"duration": args.duration, "stride": args.stride, "top_k": args.top_k, "top_p": args.top_p,
               "temperature": args.temperature, "cfg_coef": args.cfg, "seed": seed, "first_row": first_row,
               "progress": not args.quiet, "use_sampling": False if args.greedy else None}
    if melodies is not None:
        wavs, sample_rate = melodies
        wavs = model.generate_with_chroma(prompts, wavs[first_row:first_row + len(prompts)], sample_rate, **options)
    elif recording is None:
        wavs = model.generate(prompts, **options)
    else:
        wav, sample_rate = recording
        wavs = model.generate_continuation(wav.expand(len(prompts), -1, -1), sample_rate, prompts,
                                           downbeat=args.downbeat, **options)
    for prompt, path, wav in zip(prompts, paths, wavs):
        _write(path, wav, model.sample_rate, args.normalize)
        record = {"path": str(path), "prompt": prompt, "seconds": wav.shape[-1] / model.sample_rate,
                  "sample_rate": model.sample_rate, "seed": seed}
        print(json.dumps(record), flush=True)
        written.append(path)


def _read_audio(path: Path, option: str, sample_rate: int | None = None):
    """The audio file given to `option`, [C, N] at sample_rate (default: its own), and that rate."""
    import soundfile

    from infra.audio import audio_info, read_audio

    try:
        sample_rate = sample_rate or audio_info(path).sample_rate
        wav = read_audio(path, sample_rate)
    except (OSError, soundfile.LibsndfileError) as error:
        raise UserError(f"cannot read {option} audio {path}: {error}") from error
    if wav.shape[-1] == 0:
        raise UserError(f"{option} audio {path} is empty")
    return wav, sample_rate


def _read_melodies(paths: list[Path], count: int):
    """None without --melody; else a melody [C, N] for each of the `count` prompts, all at the first file's rate,
    and that rate."""
    if not paths:
        return None
    first, sample_rate = _read_audio(paths[0], "--melody")
    wavs = [first] + [_read_audio(path, "--melody", sample_rate)[0] for path in paths[1:]]
    return wavs * count if len(wavs) == 1 else wavs, sample_rate


def _check_continuation_fits(recording, duration: float, downbeat: float) -> None:
    wav, sample_rate = recording
    seconds = wav.shape[-1] / sample_rate
    if seconds >= duration:
        raise UserError(f"the --continue-from recording ({seconds:.2f} s) must be shorter than "
                        f"--duration ({duration:g} s), which counts the recording")
    if downbeat >= seconds:
        raise UserError(f"--downbeat ({downbeat:g} s) must fall within the --continue-from recording ({seconds:.2f} s)")


def _load_model(args: argparse.Namespace):
    from transformers.utils.logging import disable_progress_bar

    from .api import MusicGen

    disable_progress_bar()  # transformers' bar over the text encoder's weights: noise next to ours
    device = None if args.device == "auto" else args.device
    try:
        return MusicGen.from_pretrained(args.model, device=device, quantize="int8" if args.int8 else "int4" if args.int4 else None)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load the model: {error}") from error


def _write(path: Path, wav, sample_rate: int, normalize: bool) -> None:
    from .audio_output import prepare_for_writing, write_atomically

    wav, clipped = prepare_for_writing(wav, normalize)
    if clipped:
        print(f"{PROGRAM}: warning: {path}: {clipped} samples ({clipped / wav.numel():.2%}) clipped to [-1, 1]; "
              f"--normalize avoids it", file=sys.stderr)
    write_atomically(path, wav, sample_rate)


def _is_user_error(error: Exception) -> bool:
    """Errors the user can act on: bad values, files, running out of memory (a smaller --batch-size)."""
    import torch

    return isinstance(error, (ValueError, OSError, torch.cuda.OutOfMemoryError))


if __name__ == "__main__":
    sys.exit(main())
