"""Offline rendering of pretty_midi pieces with tinysoundfont: no download, no audio device. The training data's
font is the General MIDI SoundFont that ships inside the pretty_midi wheel (TimGM6mb.sf2); other General MIDI fonts
from Debian packages (`OTHER_SOUNDFONTS`) render the same pieces for the independent timbre analyser."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import soxr
import tinysoundfont

from infra.files import cache_folder

from .sf3 import decompressed

DRUM_CHANNEL = 9
DRUM_BANK = 128
TARGET_RMS = 0.1  # -20 dBFS
PEAK_LIMIT = 0.95
SILENCE_FLUSH_SECONDS = 0.25
DEFAULT_SYNTH_RATE = 32000  # rendering at 16 kHz directly aliases bright presets audibly


@dataclass(frozen=True)
class SoundFont:
    """A General MIDI SoundFont installed by a Debian package."""

    path: str
    package: str


OTHER_SOUNDFONTS = {
    "fluidr3": SoundFont("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
    "musescore": SoundFont("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "musescore-general-soundfont-small"),
    "opl3": SoundFont("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2", "opl3-soundfont"),
    "csound": SoundFont("/usr/share/sounds/sf2/sf_GMbank.sf2", "csound-soundfont"),
}


def soundfont_path() -> str:
    """The General MIDI SoundFont bundled with pretty_midi."""
    return os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")


def named_soundfont(name: str) -> str:
    """The path of a font of `OTHER_SOUNDFONTS`; FileNotFoundError naming its Debian package when not installed."""
    if name not in OTHER_SOUNDFONTS:
        raise ValueError(f"soundfont must be one of {sorted(OTHER_SOUNDFONTS)}, got {name!r}")
    font = OTHER_SOUNDFONTS[name]
    if not os.path.isfile(font.path):
        raise FileNotFoundError(f"SoundFont {name!r} is not installed ({font.path}): apt-get install -y {font.package}")
    return font.path


def soundfont_cache() -> Path:
    """Where SF3 fonts are kept decompressed: `infra.files.cache_folder()`/soundfonts."""
    return cache_folder() / "soundfonts"


class Renderer:
    """Renders MIDI to mono float32 audio at `sample_rate`.

    The synthesizer runs at `synth_rate` (default: the higher of `sample_rate` and 32 kHz);
    when the two differ the output is resampled with soxr. One renderer holds one loaded SoundFont (`soundfont`:
    an .sf2 or .sf3 path, default TimGM6mb); reuse it.
    """

    def __init__(self, sample_rate: int = 16000, synth_rate: int | None = None,
                 soundfont: str | Path | None = None) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
        self.soundfont = str(soundfont or soundfont_path())
        if not os.path.isfile(self.soundfont):
            raise FileNotFoundError(f"no SoundFont at {self.soundfont}")
        self.sample_rate = sample_rate
        self.synth_rate = synth_rate or max(sample_rate, DEFAULT_SYNTH_RATE)
        self.synth = tinysoundfont.Synth(samplerate=self.synth_rate)
        self.soundfont_id = self.synth.sfload(str(decompressed(self.soundfont, soundfont_cache())))

    def render(self, midi: pretty_midi.PrettyMIDI, duration: float) -> np.ndarray:
        """audio: [round(duration * sample_rate)] float32, loudness-normalised to -20 dBFS RMS."""
        if duration <= 0:
            raise ValueError(f"duration must be positive, got {duration}")
        total = int(round(duration * self.synth_rate))
        stereo = memoryview(bytearray(total * 2 * 4))
        rendered = 0
        for time, channel, pitch, velocity in self._note_events(midi):
            position = min(int(round(time * self.synth_rate)), total)
            if position >= total:
                break
            if position > rendered:
                self.synth.generate_simple(position - rendered, buffer=stereo[rendered * 8:position * 8])
                rendered = position
            if velocity:
                self.synth.noteon(channel, pitch, velocity)
            else:
                self.synth.noteoff(channel, pitch)
        if rendered < total:
            self.synth.generate_simple(total - rendered, buffer=stereo[rendered * 8:])
        self._silence()
        interleaved = np.frombuffer(stereo, dtype=np.float32)
        audio = 0.5 * (interleaved[0::2] + interleaved[1::2])
        if self.synth_rate != self.sample_rate:
            audio = soxr.resample(audio, self.synth_rate, self.sample_rate, quality="HQ")
            audio = audio[: int(round(duration * self.sample_rate))]
        return normalise(audio)

    def _note_events(self, midi: pretty_midi.PrettyMIDI) -> list[tuple[float, int, int, int]]:
        """(time, channel, pitch, velocity) sorted by time, note-offs (velocity 0) first."""
        events = []
        melodic_channels = iter(channel for channel in range(16) if channel != DRUM_CHANNEL)
        for instrument in midi.instruments:
            if instrument.is_drum:
                channel = DRUM_CHANNEL
                self.synth.program_select(channel, self.soundfont_id, DRUM_BANK, 0, is_drums=True)
            else:
                channel = next(melodic_channels, None)
                if channel is None:
                    raise ValueError("a piece can hold at most 15 melodic instruments (MIDI has 16 channels, one for drums)")
                self.synth.program_select(channel, self.soundfont_id, 0, instrument.program)
            for note in instrument.notes:
                events.append((note.start, channel, note.pitch, note.velocity))
                events.append((note.end, channel, note.pitch, 0))
        return sorted(events, key=lambda event: (event[0], event[3] > 0, event[1], event[2]))

    def _silence(self) -> None:
        """Stop every voice and let the quick releases finish, so the next piece starts clean."""
        self.synth.sounds_off()
        self.synth.generate_simple(int(SILENCE_FLUSH_SECONDS * self.synth_rate))


def normalise(audio: np.ndarray) -> np.ndarray:
    """Scale to TARGET_RMS, or less if the peak would pass PEAK_LIMIT; silence stays silent."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if rms == 0.0:
        return audio.astype(np.float32)
    gain = min(TARGET_RMS / rms, PEAK_LIMIT / peak)
    return (audio * gain).astype(np.float32)
