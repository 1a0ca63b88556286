"""audiocraft's calls on `MusicGen` (audiocraft/models/musicgen.py and genmodel.py), so that its scripts run here:

    model = MusicGen.get_pretrained("facebook/musicgen-small")     # from the local Hugging Face cache (musicgen/hub.py)
    model.set_generation_params(duration=8)                         # the defaults of every later call
    wav = model.generate_unconditional(4)                           # [4, C, N]
    wav, tokens = model.generate(descriptions=["happy rock"], progress=True, return_tokens=True)
    for i, one_wav in enumerate(wav):
        audio_write(f"{i}", one_wav.cpu(), model.sample_rate, strategy="loudness")   # musicgen/audio_output.py

`generate` and `generate_continuation` (musicgen/api.py) take audiocraft's `descriptions` and `return_tokens` beside
this project's `prompts` and `return_codes`, through `texts_of`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from .config import is_number


class AudiocraftCalls:
    """Mixed into `MusicGen`, whose config, codec, `from_pretrained`, `generate`, `check_lengths` it uses."""

    extend_stride: float | None = None  # seconds between long-form windows; None: 18/30 of a window (see generate)

    @classmethod
    def get_pretrained(cls, name: str = "facebook/musicgen-melody", device: str | torch.device | None = None) -> Any:
        """audiocraft's loader: `from_pretrained(name, device=device)`, a hub id or short name read from the local
        Hugging Face cache (or a checkpoint directory). audiocraft's default model is the melody one."""
        return cls.from_pretrained(name, device=device)

    @property
    def duration(self) -> float:
        """Seconds that a call given no duration generates (`set_generation_params`)."""
        return self.config.generation.duration

    @property
    def audio_channels(self) -> int:
        return self.codec.channels

    def set_generation_params(self, use_sampling: bool = True, top_k: int = 250, top_p: float = 0.0,
                              temperature: float = 1.0, *, duration: float = 30.0, cfg_coef: float = 3.0,
                              cfg_coef_beta: float | None = None, two_step_cfg: bool = False,
                              extend_stride: float | None = None) -> None:
        """Set the defaults of later calls, audiocraft's way: every argument not given takes audiocraft's default
        (duration 30 s), not the value before. extend_stride: seconds between the starts of long-form windows; None
        (here the default) is 18/30 of a window, audiocraft's 18 s for its 30 s windows. Nothing changes if an
        argument is refused; cfg_coef_beta (double CFG for melody models) and two_step_cfg=True are not offered.
        """
        if cfg_coef_beta is not None:
            raise ValueError(f"cfg_coef_beta (audiocraft's double CFG for melody models) is not supported; "
                             f"leave it None, got {cfg_coef_beta!r}")
        if two_step_cfg is not False:
            raise ValueError("two_step_cfg=True is not supported: the conditional and unconditional rows always run "
                             "as one batch (two_step_cfg=False)")
        if extend_stride is not None and not is_number(extend_stride):
            raise ValueError(f"extend_stride must be a number of seconds or None, got {extend_stride!r}")
        generation = dataclasses.replace(self.config.generation, use_sampling=use_sampling, top_k=top_k, top_p=top_p,
                                         temperature=temperature, duration=duration, cfg_coef=cfg_coef)
        self.check_lengths(duration, extend_stride)
        self.config.generation = generation
        self.extend_stride = extend_stride

    def generate_unconditional(self, num_samples: int, progress: bool = False,
                               return_tokens: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """num_samples clips with no text: wav [num_samples, C, N] (and codes [num_samples, K, T] with return_tokens)."""
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        return self.generate([""] * num_samples, progress=progress, return_tokens=return_tokens)


def texts_of(prompts: Sequence[str] | None, descriptions: Sequence[str | None] | None) -> Sequence[str] | None:
    """The text prompts of a call given this project's `prompts` or audiocraft's `descriptions` (not both), whose
    None entries are unconditional, as ""."""
    if descriptions is None:
        return prompts
    if prompts is not None:
        raise ValueError("give prompts or descriptions (audiocraft's name for them), not both")
    if not isinstance(descriptions, (list, tuple)):
        return descriptions  # refused with the prompts' message by the call
    return ["" if text is None else text for text in descriptions]
