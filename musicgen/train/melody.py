"""Training with a melody condition: each window's chroma from the same span of its clip's melody stem.

    stems = melody_stems(musicgen, cache)           # None for an LM without melody conditioning
    chroma = stems.window(clip, start, frames)      # [T_c, bins] one-hot, T_c = frame_count(frames * hop_length)

A clip's stem is the file its manifest row names in `melody_path` (`musicgen-make-data --write-melody` writes them:
the clip without its drums), resolved against the manifest's folder as `path` is (`infra.manifest.read_manifest`).
A window of codec frames [start, start + frames) reads the same span of the stem at the codec's rate as mono, zero-padded past the stem's end
(silence: the "no melody" chroma), and musicgen/chroma.py turns it into chroma as generation does for each long-form
window (musicgen/melody.py); in both the LM then tiles or cuts it to its chroma_frames rows. The chroma is computed
for each window rather than cached with the tokens: a window may start at any codec frame, between the frames of a
chroma of the whole clip, and reading 5 s of a WAV with its STFT takes about 4 ms.

`add_melody` gives an LM without melody conditioning a chroma projection of zeros, summed with each step's input at
its time (lm.chroma_stride, musicgen/lm.py): a fine-tune starts from exactly the LM's text-only behaviour.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from infra.audio import BadAudio, read_checked
from infra.manifest import MELODY_KEY
from musicgen.api import MusicGen
from musicgen.chroma import chroma, frame_count, null_chroma
from musicgen.config import ChromaConfig

from .config import AddMelodyConfig
from .token_cache import TokenCache


def add_melody(musicgen: MusicGen, settings: AddMelodyConfig) -> MusicGen:
    """Give musicgen's LM melody conditioning: `settings.chroma_bins` bins projected by a zero Linear into
    chroma_frames rows (0: `frame_count` of the model's longest window, `max_frames` codec frames), each summed with
    the inputs of the steps it sounds at (lm.chroma_stride: codec frames per chroma frame), and the model's
    chroma settings. The LM's other weights are kept; an LM that is melody-conditioned already is refused."""
    lm = musicgen.lm
    if lm.config.melody:
        raise ValueError(f"the LM is melody-conditioned already (lm.chroma_bins = {lm.config.chroma_bins}); "
                         "leave add_melody out to train it as it is")
    window = musicgen.max_frames * musicgen.codec.hop_length
    frames = settings.chroma_frames or frame_count(window, n_fft=settings.n_fft, hop_length=settings.hop_length)
    lm.config = dataclasses.replace(lm.config, chroma_bins=settings.chroma_bins, chroma_frames=frames,
                                    chroma_stride=settings.hop_length / musicgen.codec.hop_length)
    lm.chroma_projection = nn.Linear(settings.chroma_bins, lm.config.dim).to(lm.norm.weight)
    nn.init.zeros_(lm.chroma_projection.weight)
    nn.init.zeros_(lm.chroma_projection.bias)
    musicgen.config = dataclasses.replace(musicgen.config, lm=lm.config,
                                          chroma=ChromaConfig(n_fft=settings.n_fft, hop_length=settings.hop_length))
    return musicgen


class MelodyStems:
    """The melody stems of a token cache's clips, read as the chroma of a window: at sample_rate (the codec's), a
    codec frame every hop_length samples, chroma by `settings` with `bins` bins."""

    def __init__(self, cache: TokenCache, *, sample_rate: int, hop_length: int, settings: ChromaConfig,
                 bins: int) -> None:
        self.paths = [clip.get(MELODY_KEY) for clip in cache.clips]
        missing = [index for index, path in enumerate(self.paths) if not isinstance(path, str) or not path]
        if missing:
            first = cache.clips[missing[0]].get("path", f"clip {missing[0]}")
            raise ValueError(f"{len(missing)} of the {len(self.paths)} clips of the token cache in {cache.folder} have "
                             f"no {MELODY_KEY} (first: {first}); a melody-conditioned LM trains on each clip's melody "
                             f"stem, named in its manifest row's {MELODY_KEY}: make the data with musicgen-make-data "
                             "--write-melody")
        absent = [path for path in self.paths if not Path(path).is_file()]
        if absent:
            raise FileNotFoundError(f"{len(absent)} melody stems named by the token cache in {cache.folder} are not "
                                    f"there (first: {absent[0]})")
        self.sample_rate, self.hop_length, self.settings, self.bins = sample_rate, hop_length, settings, bins

    def window(self, clip: int, start: int, frames: int) -> torch.Tensor:
        """The chroma [T_c, bins] float32 one-hot of clip `clip`'s stem over codec frames [start, start + frames)."""
        samples = frames * self.hop_length
        try:
            stem = read_checked(self.paths[clip], self.sample_rate, 1, start * self.hop_length / self.sample_rate,
                                duration=samples / self.sample_rate)
        except BadAudio as error:
            raise ValueError(f"melody stem {self.paths[clip]}: {error}") from error
        wav = torch.zeros(1, samples)
        wav[:, :stem.shape[-1]] = stem[:, :samples]
        return chroma(wav, sample_rate=self.sample_rate, n_fft=self.settings.n_fft,
                      hop_length=self.settings.hop_length, bins=self.bins)[0]

    def silence(self, frames: int) -> torch.Tensor:
        """The "no melody" chroma [T_c, bins] of a window of `frames` codec frames (the chroma of silence)."""
        count = frame_count(frames * self.hop_length, n_fft=self.settings.n_fft, hop_length=self.settings.hop_length)
        return null_chroma(1, count, self.bins)[0]


def melody_stems(musicgen: MusicGen, cache: TokenCache | None) -> MelodyStems | None:
    """The cache's stems read with musicgen's codec and chroma settings; None without a cache or for an LM without
    melody conditioning."""
    if cache is None or not musicgen.lm.config.melody:
        return None
    return MelodyStems(cache, sample_rate=musicgen.sample_rate, hop_length=musicgen.codec.hop_length,
                       settings=musicgen.config.chroma, bins=musicgen.lm.config.chroma_bins)
