"""Offline rendering of pretty_midi pieces with tinysoundfont and the General MIDI SoundFont
that ships inside the pretty_midi wheel (TimGM6mb.sf2): no download, no audio device."""
from __future__ import annotations

import os

import numpy as np
import pretty_midi
import soxr
import tinysoundfont

DRUM_CHANNEL = 9
DRUM_BANK = 128
TARGET_RMS = 0.1  # -20 dBFS
PEAK_LIMIT = 0.95
SILENCE_FLUSH_SECONDS = 0.25
DEFAULT_SYNTH_RATE = 32000  # rendering at 16 kHz directly aliases bright presets audibly


def soundfont_path() -> str:
    """The General MIDI SoundFont bundled with pretty_midi."""
    return os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")


class Renderer:
    """Renders MIDI to mono float32 audio at `sample_rate`.

    The synthesizer runs at `synth_rate` (default: the higher of `sample_rate` and 32 kHz);
    when the two differ the output is resampled with soxr. One renderer holds one loaded SoundFont; reuse it.
    """

    def __init__(self, sample_rate: int = 16000, synth_rate: int | None = None) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
        self.sample_rate = sample_rate
        self.synth_rate = synth_rate or max(sample_rate, DEFAULT_SYNTH_RATE)
        self.synth = tinysoundfont.Synth(samplerate=self.synth_rate)
        self.soundfont_id = self.synth.sfload(soundfont_path())

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
