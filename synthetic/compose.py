"""Procedural composition: a `PieceSpec` (instrument, tempo, key, drums, density) becomes MIDI.

A piece is in 4/4 and built from 4-bar phrases over a diatonic chord progression that starts
on the tonic: a melody (a 2-bar motif, replayed from a tone of every other bar's chord), a chord
accompaniment on the same instrument, and optionally a drum kit with a kick or snare on every
beat (so the tempo is audible). Every random choice comes from the `numpy` generator passed in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pretty_midi

MODES = ("major", "minor")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
KEY_NAMES = {
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"),
}
# Chord progressions as 0-based scale degrees, one chord a bar, all starting on the tonic.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 3), (0, 5, 3, 4), (0, 3, 5, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 5, 4)),
}
DENSITIES = ("sparse", "moderate", "busy")
# One-bar melody rhythms in beats, per density.
RHYTHMS = {
    "sparse": ((4.0,), (2.0, 2.0), (3.0, 1.0), (2.0, 1.0, 1.0), (1.0, 1.0, 2.0)),
    "moderate": ((1.0, 1.0, 1.0, 1.0), (1.0, 0.5, 0.5, 1.0, 1.0), (1.5, 0.5, 1.0, 1.0),
                 (0.5, 0.5, 1.0, 0.5, 0.5, 1.0), (2.0, 1.0, 0.5, 0.5)),
    "busy": ((0.5,) * 8, (0.25, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0),
             (0.5, 0.25, 0.25, 0.5, 0.5, 0.5, 0.25, 0.25, 0.5, 0.5), (0.25,) * 8 + (0.5, 0.5, 1.0)),
}
ACCOMPANIMENTS = ("block", "pulse", "arpeggio", "strum")
KICK, SNARE, CLOSED_HAT, CRASH = 36, 38, 42, 49
DRUM_GROOVES = {  # beat positions in a 4/4 bar
    "rock": {KICK: (0.0, 2.0), SNARE: (1.0, 3.0)},
    "four_on_the_floor": {KICK: (0.0, 1.0, 2.0, 3.0), SNARE: (1.0, 3.0)},
    "syncopated": {KICK: (0.0, 1.5, 2.0), SNARE: (1.0, 3.0)},
}


@dataclass(frozen=True)
class Instrument:
    """A General MIDI instrument family: its program and where its parts sit (MIDI pitches)."""

    program: int
    melody_range: tuple[int, int]
    chord_floor: int
    chord_size: int = 3


INSTRUMENTS: dict[str, Instrument] = {
    "piano": Instrument(program=0, melody_range=(62, 86), chord_floor=48),
    "strings": Instrument(program=48, melody_range=(62, 86), chord_floor=50),
    "guitar": Instrument(program=24, melody_range=(62, 86), chord_floor=45),
    "flute": Instrument(program=73, melody_range=(67, 93), chord_floor=60),
    "organ": Instrument(program=16, melody_range=(60, 84), chord_floor=48),
    "brass": Instrument(program=61, melody_range=(58, 82), chord_floor=48),
    "bass": Instrument(program=33, melody_range=(40, 60), chord_floor=28, chord_size=1),
    "synth lead": Instrument(program=80, melody_range=(60, 84), chord_floor=48),
}


@dataclass(frozen=True)
class PieceSpec:
    """What a clip holds; the caption states (a subset of) it."""

    instrument: str
    bpm: int
    tonic: int
    mode: str
    drums: bool
    density: str

    def __post_init__(self) -> None:
        if self.instrument not in INSTRUMENTS:
            raise ValueError(f"instrument must be one of {sorted(INSTRUMENTS)}, got {self.instrument!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0 <= self.tonic < 12:
            raise ValueError(f"tonic must be a pitch class in [0, 12), got {self.tonic}")
        if self.density not in DENSITIES:
            raise ValueError(f"density must be one of {DENSITIES}, got {self.density!r}")
        if not 20 <= self.bpm <= 300:
            raise ValueError(f"bpm must be in [20, 300], got {self.bpm}")

    @property
    def key(self) -> str:
        """The tonic's name as written in captions: 'F#', 'Bb'."""
        return KEY_NAMES[self.mode][self.tonic]

    @property
    def program(self) -> int:
        return INSTRUMENTS[self.instrument].program


def compose(spec: PieceSpec, duration: float, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """A piece at least `duration` seconds long: tempo, key signature, melody, chords, drums."""
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    beat = 60.0 / spec.bpm
    bars = 2 * math.ceil((duration / (4 * beat) + 1) / 2)  # whole 2-bar motifs, past the end
    progression = PROGRESSIONS[spec.mode][rng.integers(len(PROGRESSIONS[spec.mode]))]
    chord_degrees = [progression[bar % 4] for bar in range(bars)]
    midi = pretty_midi.PrettyMIDI(initial_tempo=float(spec.bpm))
    midi.key_signature_changes.append(pretty_midi.KeySignature(spec.tonic + 12 * MODES.index(spec.mode), 0.0))
    melody = pretty_midi.Instrument(spec.program, name="melody")
    melody.notes = melody_notes(spec, chord_degrees, beat, rng)
    chords = pretty_midi.Instrument(spec.program, name="chords")
    chords.notes = chord_notes(spec, chord_degrees, beat, rng)
    midi.instruments += [melody, chords]
    if spec.drums:
        drums = pretty_midi.Instrument(0, is_drum=True, name="drums")
        drums.notes = drum_notes(spec.bpm, bars, beat, rng)
        midi.instruments.append(drums)
    return midi


def scale_pitches(spec: PieceSpec, low: int, high: int) -> list[int]:
    """Every pitch of the key in [low, high], ascending."""
    pitch_classes = {(spec.tonic + step) % 12 for step in SCALES[spec.mode]}
    return [pitch for pitch in range(low, high + 1) if pitch % 12 in pitch_classes]


def triad_pitch_classes(spec: PieceSpec, degree: int) -> list[int]:
    """Root, third, fifth of the diatonic triad on a 0-based scale degree."""
    scale = SCALES[spec.mode]
    return [(spec.tonic + scale[(degree + offset) % 7]) % 12 for offset in (0, 2, 4)]


def melody_notes(spec: PieceSpec, chord_degrees: list[int], beat: float, rng: np.random.Generator) -> list[pretty_midi.Note]:
    """A 2-bar motif (rhythm and scale steps) replayed from a chord tone of every other bar's chord."""
    low, high = INSTRUMENTS[spec.instrument].melody_range
    pitches = scale_pitches(spec, low, high)
    motif_rhythm = [RHYTHMS[spec.density][rng.integers(len(RHYTHMS[spec.density]))] for _ in range(2)]
    motif_steps = [0] + [int(rng.choice((-2, -1, -1, 1, 1, 2, 0, 3, -3))) for _ in range(sum(map(len, motif_rhythm)) - 1)]
    notes = []
    for start_bar in range(0, len(chord_degrees), 2):
        chord = triad_pitch_classes(spec, chord_degrees[start_bar])
        anchors = [i for i, pitch in enumerate(pitches) if pitch % 12 in chord and 0.25 < i / len(pitches) < 0.75]
        position = int(rng.choice(anchors))
        step_index = 0
        for bar_offset, rhythm in enumerate(motif_rhythm):
            onset = 4.0 * (start_bar + bar_offset)
            for length in rhythm:
                position = reflect(position + motif_steps[step_index], len(pitches))
                step_index += 1
                velocity = 92 + 12 * (onset % 4 == 0) + int(rng.integers(-6, 7))
                notes.append(pretty_midi.Note(velocity, pitches[position], onset * beat, (onset + 0.92 * length) * beat))
                onset += length
    return notes


def reflect(position: int, size: int) -> int:
    """Fold an index back into [0, size) at both ends."""
    while not 0 <= position < size:
        position = -position if position < 0 else 2 * (size - 1) - position
    return position


def chord_notes(spec: PieceSpec, chord_degrees: list[int], beat: float, rng: np.random.Generator) -> list[pretty_midi.Note]:
    """The accompaniment: one diatonic chord a bar, block, pulsed, arpeggiated or strummed."""
    instrument = INSTRUMENTS[spec.instrument]
    style = "pulse" if instrument.chord_size == 1 else ACCOMPANIMENTS[rng.integers(len(ACCOMPANIMENTS))]
    notes = []
    for bar, degree in enumerate(chord_degrees):
        pitch_classes = triad_pitch_classes(spec, degree)[:instrument.chord_size]
        root = instrument.chord_floor + (pitch_classes[0] - instrument.chord_floor) % 12
        voicing = [root + (pitch_class - root) % 12 for pitch_class in pitch_classes]
        bar_start = bar * 4 * beat
        for onset, length, pitches, spread in accompaniment_hits(style, voicing):
            for order, pitch in enumerate(pitches):
                start = bar_start + onset * beat + order * spread
                velocity = int(62 + rng.integers(-4, 5))
                notes.append(pretty_midi.Note(velocity, pitch, start, bar_start + (onset + length) * beat))
    return notes


def accompaniment_hits(style: str, voicing: list[int]) -> list[tuple[float, float, list[int], float]]:
    """(onset beat, length in beats, pitches, seconds between strummed strings) within one bar."""
    if style == "block":
        return [(0.0, 3.9, voicing, 0.0)]
    if style == "pulse":
        return [(float(beat), 0.85, voicing, 0.0) for beat in range(4)]
    if style == "arpeggio":
        cycle = voicing + [voicing[0] + 12, voicing[1]]
        return [(0.5 * step, 0.5, [cycle[step % len(cycle)]], 0.0) for step in range(8)]
    if style == "strum":
        return [(onset, length, voicing, 0.015) for onset, length in ((0.0, 1.45), (1.5, 1.0), (2.5, 1.45))]
    raise ValueError(f"accompaniment style must be one of {ACCOMPANIMENTS}, got {style!r}")


def drum_notes(bpm: int, bars: int, beat: float, rng: np.random.Generator) -> list[pretty_midi.Note]:
    """A groove with a kick or snare on every beat, hats (eighths below 150 BPM), a crash each phrase."""
    groove = DRUM_GROOVES[list(DRUM_GROOVES)[rng.integers(len(DRUM_GROOVES))]]
    hat_step = 0.5 if bpm < 150 else 1.0
    notes = []
    for bar in range(bars):
        hits = [(position, pitch, 104) for pitch, positions in groove.items() for position in positions]
        hits += [(position, CLOSED_HAT, 50 + 12 * (position % 1 == 0)) for position in np.arange(0.0, 4.0, hat_step)]
        if bar % 4 == 0:
            hits.append((0.0, CRASH, 84))
        if bar % 4 == 3:
            hits.append((3.5, SNARE, 88))
        for position, pitch, velocity in hits:
            start = (bar * 4 + position) * beat
            notes.append(pretty_midi.Note(int(velocity + rng.integers(-4, 5)), pitch, start, start + 0.1))
    return notes
