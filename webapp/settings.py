"""The page's form, checked: prompts, duration, seed, sampling, the model's name and an audio file to continue.

Every bad input raises `BadInput` with a sentence the page shows as it is. A form parses to `Settings`, which
also says the `musicgen-generate` command line that makes the same files.
"""
from __future__ import annotations

import io
import math
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import soundfile
import torch

from musicgen.config import Sampling

MAX_PROMPTS = 8
MAX_DURATION = 120.0
MAX_UPLOAD_BYTES = 20 * 2**20
MAX_UPLOAD_SECONDS = 60.0
SEED_RANGE = 2**31


class BadInput(ValueError):
    """An input the page must refuse; its message is shown to the user."""


@dataclass(frozen=True)
class Upload:
    """An uploaded recording to continue: wav [C, N] float32 at sample_rate."""

    name: str
    wav: torch.Tensor
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.wav.shape[-1] / self.sample_rate


@dataclass(frozen=True)
class Settings:
    """One request: B prompts and how to sample them (seed: prompt i draws from (seed, i), as musicgen-generate)."""

    model: str
    prompts: tuple[str, ...]
    duration: float
    seed: int
    top_k: int
    top_p: float
    temperature: float
    cfg_coef: float
    continue_from: str | None = None

    def sampling(self) -> dict:
        """The keyword arguments of `MusicGen.generate_stream` these settings give (prompts and duration apart)."""
        return dict(seed=self.seed, top_k=self.top_k, top_p=self.top_p, temperature=self.temperature,
                    cfg_coef=self.cfg_coef)

    def as_dict(self) -> dict:
        return {**asdict(self), "prompts": list(self.prompts)}

    def command_line(self, model_dir: Path | None) -> str:
        """The musicgen-generate call that writes the same audio (model_dir None: the embedded model)."""
        words = ["musicgen-generate"]
        for prompt in self.prompts:
            words += ["--text", prompt]
        words += ["--duration", f"{self.duration:g}", "--seed", str(self.seed), "--top-k", str(self.top_k),
                  "--top-p", f"{self.top_p:g}", "--temperature", f"{self.temperature:g}", "--cfg", f"{self.cfg_coef:g}"]
        if model_dir is not None:
            words += ["--model", str(model_dir)]
        if self.continue_from is not None:
            words += ["--continue-from", self.continue_from]
        return shlex.join(words)


def parse_settings(form: Mapping[str, str], models: list[str], upload: Upload | None = None) -> Settings:
    """The form's text fields (prompts one a line, duration, seed (empty: a random one), top_k, top_p, temperature,
    cfg_coef, model) -> Settings; BadInput names the first field that is wrong."""
    prompts = tuple(line.strip() for line in form.get("prompts", "").splitlines() if line.strip())
    if not prompts:
        raise BadInput("Enter at least one prompt (one per line).")
    if len(prompts) > MAX_PROMPTS:
        raise BadInput(f"At most {MAX_PROMPTS} prompts at a time; got {len(prompts)}.")
    model = form.get("model") or models[0]
    if model not in models:
        raise BadInput(f"Unknown model {model!r}; this server has {', '.join(models)}.")
    duration = _number(form, "duration", float)
    if not 0 < duration <= MAX_DURATION:
        raise BadInput(f"Duration must be more than 0 and at most {MAX_DURATION:g} seconds; got {duration:g}.")
    if upload is not None and upload.seconds >= duration:
        raise BadInput(f"Duration must be longer than the uploaded audio ({upload.seconds:.2f} s), which it continues.")
    seed = secrets.randbelow(SEED_RANGE) if not form.get("seed", "").strip() else _number(form, "seed", int)
    if seed < 0:
        raise BadInput(f"Seed must be a whole number >= 0 (or empty for a random one); got {seed}.")
    numbers = dict(top_k=_number(form, "top_k", int), top_p=_number(form, "top_p", float),
                   temperature=_number(form, "temperature", float), cfg_coef=_number(form, "cfg_coef", float))
    try:
        Sampling(**numbers)
    except ValueError as error:
        raise BadInput(f"{str(error)[0].upper()}{str(error)[1:]}.") from None
    return Settings(model=model, prompts=prompts, duration=duration, seed=seed, **numbers,
                    continue_from=None if upload is None else upload.name)


def _number(form: Mapping[str, str], name: str, kind: type) -> float | int:
    text = form.get(name, "").strip()
    expected = "a whole number" if kind is int else "a number"
    try:
        value = kind(text)
    except ValueError:
        raise BadInput(f"{name.replace('_', ' ').capitalize()} must be {expected}; got {text!r}.") from None
    if not math.isfinite(value):
        raise BadInput(f"{name.replace('_', ' ').capitalize()} must be a finite number; got {text!r}.")
    return value


def read_upload(name: str, data: bytes) -> Upload:
    """An uploaded file's bytes -> Upload; BadInput if too large, not audio soundfile reads, empty or too long."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadInput(f"The upload is {len(data) / 2**20:.1f} MB; at most {MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        samples, sample_rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise BadInput(f"{name!r} is not an audio file this server reads (WAV, FLAC, OGG or MP3).") from None
    if samples.shape[0] == 0:
        raise BadInput(f"{name!r} holds no audio.")
    if samples.shape[0] / sample_rate > MAX_UPLOAD_SECONDS:
        raise BadInput(f"{name!r} is {samples.shape[0] / sample_rate:.1f} s long; at most {MAX_UPLOAD_SECONDS:g} s.")
    return Upload(Path(name).name or "upload.wav", torch.from_numpy(samples.T.copy()), sample_rate)
