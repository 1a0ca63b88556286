"""Melody conditioning: `MusicGen.generate_with_chroma`, and melody wavs to the chroma each generation window follows.

    wav = mg.generate_with_chroma(["lo-fi piano"], melody[None], melody_sample_rate, duration=8.0)   # [1, C, N]

    melody_wavs [B, C, N] or B × [C, N] (None: no melody) at melody_sample_rate
      ─► mono (the mean of the channels) at the codec's rate (infra/audio.py's soxr resample), checked
      ─► per window: [B, N'] ─► chroma [B, T_c, bins] (musicgen/chroma.py) ─► the LM tiles or cuts it to chroma_frames

A clip that fits one window (as audiocraft's and transformers' generate_with_chroma): the melodies are zero-padded to
the longest of the batch and cut to chroma.max_seconds, so a short melody's chroma ends in silent frames (bin 0)
before the LM tiles it, and a prompt's tokens depend on the other melodies of its batch, as they do in both.
A longer clip (musicgen/long_form.py's windows), as audiocraft's MusicGen._generate_tokens: each window follows the
melody read from the window's first sample on for a whole window (`window_frames` frames), looping back to its start
when it ends. A prompt without a melody gets silence, whose chroma is the "no melody" one (bin 0 in every frame).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from infra.audio import mix_channels, resample

from .audiocraft_calls import texts_of
from .chroma import chroma
from .conditioners import check_prompts
from .config import ChromaConfig
from .long_form import Window

MelodyWavs = torch.Tensor | Sequence[torch.Tensor | None]


@dataclass(frozen=True)
class Melody:
    """One melody per prompt, mono [N_b] float32 at sample_rate (the codec's; None: that prompt has none), with how
    they become chroma: `settings` and `bins` (lm.chroma_bins), and the clip's frames (hop_length samples each) and
    long-form windows (window_frames frames each)."""

    wavs: tuple[torch.Tensor | None, ...]
    sample_rate: int
    settings: ChromaConfig
    bins: int
    hop_length: int
    window_frames: int

    @classmethod
    def prepare(cls, melody_wavs: MelodyWavs, melody_sample_rate: int, *, prompts: int, sample_rate: int,
                settings: ChromaConfig, bins: int, hop_length: int, window_frames: int) -> Melody:
        """Check melody_wavs ([B, C, N] float, or a list of B [C, N] float tensors and None) at melody_sample_rate
        for `prompts` prompts and bring them to mono at sample_rate; bins 0 (an LM without melody conditioning)
        refuses them. ValueError says what was expected."""
        if bins < 1:
            raise ValueError("this model is not conditioned on melodies (lm.chroma_bins is 0); a melody needs a "
                             "melody model such as facebook/musicgen-melody")
        if not isinstance(melody_sample_rate, int) or isinstance(melody_sample_rate, bool) or melody_sample_rate < 1:
            raise ValueError(f"melody_sample_rate must be a positive integer (Hz), got {melody_sample_rate!r}")
        wavs = _listed(melody_wavs)
        if len(wavs) != prompts:
            raise ValueError(f"got {len(wavs)} melodies for {prompts} prompts; expected one each (None for none)")
        mono = tuple(None if wav is None else _mono(index, wav, melody_sample_rate, sample_rate, settings.hop_length)
                     for index, wav in enumerate(wavs))
        return cls(mono, sample_rate, settings, bins, hop_length, window_frames)

    def window_chromas(self, windows: Sequence[Window]) -> list[torch.Tensor | None]:
        """The chroma [B, T_c, bins] of each window (None where no prompt has a melody: the LM's "no melody")."""
        if len(windows) == 1:
            return [self._chroma(self.wavs)]
        length = self.window_frames * self.hop_length
        return [self._chroma(tuple(None if wav is None else _looped(wav, window.start * self.hop_length, length)
                                   for wav in self.wavs)) for window in windows]

    def _chroma(self, wavs: tuple[torch.Tensor | None, ...]) -> torch.Tensor | None:
        """wavs zero-padded to the longest and cut to settings.max_seconds -> chroma [B, T_c, bins]."""
        if all(wav is None for wav in wavs):
            return None
        limit = round(self.settings.max_seconds * self.sample_rate)
        batch = torch.zeros(len(wavs), min(limit, max(wav.shape[-1] for wav in wavs if wav is not None)))
        for row, wav in enumerate(wavs):
            if wav is not None:
                batch[row, :min(limit, wav.shape[-1])] = wav[:limit]
        return chroma(batch, sample_rate=self.sample_rate, n_fft=self.settings.n_fft,
                      hop_length=self.settings.hop_length, bins=self.bins)


class MelodyGeneration:
    """Mixed into `MusicGen`, whose config, LM, codec, `max_frames`, `_sampling` and `_generate` it uses."""

    def generate_with_chroma(self, prompts: list[str] | None, melody_wavs: MelodyWavs, melody_sample_rate: int,
                             duration: float | None = None, *, use_sampling: bool | None = None,
                             top_k: int | None = None, top_p: float | None = None, temperature: float | None = None,
                             cfg_coef: float | None = None, seed: int | None = None, first_row: int = 0,
                             stride: float | None = None, return_codes: bool = False,
                             progress: bool | Callable[[int, int], None] = False, channels: int | None = None,
                             descriptions: list[str | None] | None = None,
                             return_tokens: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """`generate`, each prompt's music also following a melody: melody_wavs [B, C, N] float, or a list of B [C, N]
        float tensors (None: that prompt has no melody), at melody_sample_rate Hz, one per prompt; the other
        arguments as for `generate` (audiocraft's descriptions and return_tokens too). A model without melody
        conditioning (lm.chroma_bins 0), a melody that is silent, not finite or shorter than one chroma frame, a
        sample rate below 1 or a number of melodies other than of prompts: ValueError."""
        prompts = texts_of(prompts, descriptions)
        check_prompts(prompts)
        melody = Melody.prepare(melody_wavs, melody_sample_rate, prompts=len(prompts), sample_rate=self.sample_rate,
                                settings=self.config.chroma, bins=self.lm.config.chroma_bins,
                                hop_length=self.codec.hop_length, window_frames=self.max_frames)
        sampling = self._sampling(use_sampling=use_sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                                  cfg_coef=cfg_coef)
        return self._generate(prompts, duration=duration, prompt_codes=None, downbeat_frame=0.0, sampling=sampling,
                              seed=seed, first_row=first_row, stride=stride, channels=channels, melody=melody,
                              return_codes=return_codes or return_tokens, progress=progress)


def _listed(melody_wavs: MelodyWavs) -> list[torch.Tensor | None]:
    """[B, C, N] -> its B rows; a list or tuple of [C, N] tensors and None as it is."""
    if isinstance(melody_wavs, (list, tuple)) or isinstance(melody_wavs, torch.Tensor) and melody_wavs.dim() == 3:
        return list(melody_wavs)
    raise ValueError(f"melody_wavs must be a tensor [B, C, N] or a list of [C, N] tensors (None: no melody), "
                     f"got {getattr(melody_wavs, 'shape', type(melody_wavs).__name__)}")


def _mono(index: int, wav: torch.Tensor, from_rate: int, to_rate: int, chroma_hop: int) -> torch.Tensor:
    """Melody `index`, [C, N] float at from_rate -> [N'] float32 at to_rate, checked: finite, not silent, at least one
    chroma frame (chroma_hop samples at to_rate) long."""
    if not isinstance(wav, torch.Tensor) or wav.dim() != 2 or not wav.is_floating_point():
        raise ValueError(f"melody {index} must be a float tensor [C, N] (or None for no melody), "
                         f"got {getattr(wav, 'shape', type(wav).__name__)}")
    wav = mix_channels(wav.detach().float().cpu(), 1)
    if not torch.isfinite(wav).all():
        raise ValueError(f"melody {index} has samples that are not finite (NaN or infinite)")
    if not wav.abs().max() > 0:
        raise ValueError(f"melody {index} is silent; give None for a prompt without a melody")
    if from_rate != to_rate:
        wav = resample(wav, from_rate, to_rate)
    if wav.shape[-1] < chroma_hop:
        raise ValueError(f"melody {index} is {wav.shape[-1] / to_rate:.3f} s long, shorter than one chroma frame "
                         f"({chroma_hop} samples, {chroma_hop / to_rate:.3f} s at {to_rate} Hz)")
    return wav[0]


def _looped(wav: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """wav [N] read from sample `start` for `length` samples, going back to its beginning each time it ends."""
    return wav[(start + torch.arange(length)) % wav.shape[-1]]
