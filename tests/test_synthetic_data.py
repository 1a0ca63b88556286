"""The synthetic-music generator: deterministic bytes, captions that state what the MIDI holds,
and a train / held-out split that never mixes."""
import itertools
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from synthetic.compose import INSTRUMENTS, MODES, PieceSpec, compose
from synthetic.dataset import heldout_prompts, make_piece, write_dataset
from synthetic.render import Renderer
from synthetic.split import BPM_CHOICES, TEMPO_BUCKETS, clip_rng, is_heldout, sample_spec

# What a caption's words promise, written independently of the generator's word lists.
GM_PROGRAMS = {"piano": range(0, 8), "organ": range(16, 24), "guitar": range(24, 32), "bass": range(32, 40),
               "strings": range(40, 52), "string": range(40, 52), "brass": range(56, 64), "horns": range(56, 64), "horn": range(56, 64),
               "euphonium": range(56, 64),
               "flute": range(72, 80), "synth": range(80, 88), "lead": range(80, 88)}
TEMPO_WORD_BPM = {"slow": (60, 80), "gentle": (60, 80), "calm": (60, 80), "laid-back": (60, 80),
                  "slow-paced": (60, 80), "lazy": (60, 80),
                  "mid-tempo": (90, 110), "moderate": (90, 110), "steady": (90, 110), "medium-paced": (90, 110),
                  "upbeat": (120, 140), "lively": (120, 140), "bouncy": (120, 140), "peppy": (120, 140),
                  "fast": (150, 180), "energetic": (150, 180), "driving": (150, 180), "rapid": (150, 180),
                  "high-energy": (150, 180), "racing": (150, 180),
                  "slow-moving": (60, 80), "sleepy": (60, 80), "tranquil": (60, 80), "ambling": (60, 80),
                  "downtempo": (60, 80), "serene": (60, 80), "medium": (90, 110), "walking-pace": (90, 110),
                  "even-paced": (90, 110), "mid-paced": (90, 110), "jaunty": (120, 140), "spirited": (120, 140),
                  "perky": (120, 140), "sprightly": (120, 140), "swift": (150, 180), "fast-paced": (150, 180),
                  "furious": (150, 180), "nimble": (150, 180), "galloping": (150, 180), "hasty": (150, 180)}
MOOD_MODE = {"happy": "major", "bright": "major", "cheerful": "major", "sunny": "major", "hopeful": "major",
             "glad": "major", "festive": "major", "optimistic": "major", "radiant": "major", "carefree": "major",
             "sad": "minor", "dark": "minor", "melancholic": "minor", "moody": "minor", "somber": "minor",
             "tragic": "minor", "wistful": "minor", "haunting": "minor", "bleak": "minor", "tearful": "minor"}
PITCH_CLASSES = {"C": 0, "C#": 1, "Db": 1, "D": 2, "Eb": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8, "Ab": 8,
                 "A": 9, "Bb": 10, "B": 11}
SCALE_STEPS = {"major": {0, 2, 4, 5, 7, 9, 11}, "minor": {0, 2, 3, 5, 7, 8, 10}}


def check_caption_against_midi(caption, midi):
    words = re.findall(r"[a-z][a-z-]*", caption.lower())
    melodic = [instrument for instrument in midi.instruments if not instrument.is_drum]
    has_drums = len(melodic) < len(midi.instruments)
    families = {GM_PROGRAMS[word] for word in words if word in GM_PROGRAMS}
    assert len(families) == 1, caption
    programs = families.pop()
    assert all(instrument.program in programs for instrument in melodic), caption

    bpm = float(midi.get_tempo_changes()[1][0])
    beat = 60.0 / bpm
    stated_bpm = re.findall(r"(\d+) ?bpm", caption.lower())
    if stated_bpm:
        assert float(stated_bpm[0]) == pytest.approx(bpm, rel=1e-6), caption
    for word in set(words) & set(TEMPO_WORD_BPM):
        low, high = TEMPO_WORD_BPM[word]
        assert low - 1e-3 <= bpm <= high + 1e-3, caption
    onsets = np.array([note.start for instrument in midi.instruments if instrument.name != "chords"
                       for note in instrument.notes])
    assert np.allclose(np.round(onsets / (beat / 4)) * (beat / 4), onsets, atol=1e-6), "onsets off the 16th grid"
    if has_drums:
        kicks_and_snares = {round(note.start / beat, 6) for note in midi.instruments[2].notes if note.pitch in (36, 38)}
        assert set(range(int(midi.get_end_time() / beat))) <= kicks_and_snares, "a beat without kick or snare"

    key_number = midi.key_signature_changes[0].key_number
    tonic, mode = key_number % 12, MODES[key_number // 12]
    stated_key = re.findall(r"\b([A-G][b#]?) (major|minor)", caption)
    if stated_key:
        assert (PITCH_CLASSES[stated_key[0][0]], stated_key[0][1]) == (tonic, mode), caption
    for word in set(words) & set(MOOD_MODE):
        assert MOOD_MODE[word] == mode, caption
    pitch_classes = {(note.pitch - tonic) % 12 for instrument in melodic for note in instrument.notes}
    assert pitch_classes <= SCALE_STEPS[mode], caption
    first_chord = sorted(note.pitch for note in midi.instruments[1].notes if note.start < beat * 0.99)
    assert first_chord[0] % 12 == tonic, caption
    if len(set(first_chord)) > 1:
        third = 3 if mode == "minor" else 4
        assert (tonic + third) % 12 in {pitch % 12 for pitch in first_chord}, caption

    assert ("drum" in caption.lower() or "drums" in words) == has_drums, caption
    melody = next(instrument for instrument in midi.instruments if instrument.name == "melody")
    notes_per_beat = len(melody.notes) / (midi.get_end_time() / beat)
    if {"sparse", "minimal"} & set(words):
        assert notes_per_beat <= 1.0, caption
    if {"busy", "intricate"} & set(words):
        assert notes_per_beat >= 1.8, caption


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_captions_state_what_the_midi_holds(split):
    for index in range(150):
        piece = make_piece(seed=3, index=index, split=split, duration=6.0)
        check_caption_against_midi(piece.description, piece.midi)
        assert piece.midi.get_end_time() >= 6.0


def test_heldout_prompts_state_instrument_tempo_and_key_of_heldout_combinations():
    prompts = heldout_prompts(40, seed=1)
    for (caption, spec), index in zip(prompts, range(40)):
        assert is_heldout(spec.instrument, spec.bpm, spec.tonic, spec.mode)
        assert re.search(rf"\b{spec.bpm} bpm", caption.lower()), caption
        assert f"{spec.key} {spec.mode}" in caption, caption
        assert make_piece(1, index, "heldout", 2.0).spec == spec
        check_caption_against_midi(caption, compose(spec, 4.0, np.random.default_rng(index)))
    assert {spec.drums for _, spec in prompts} == {True, False}


def test_split_holds_out_one_combination_in_eight_and_keeps_every_pair_in_training():
    keys = [(tonic, mode) for mode in MODES for tonic in range(12)]
    buckets = {name: low for name, (low, _) in TEMPO_BUCKETS.items()}
    combinations = list(itertools.product(INSTRUMENTS, buckets.values(), keys))
    heldout = {(instrument, bpm, key) for instrument, bpm, key in combinations if is_heldout(instrument, bpm, *key)}
    assert len(heldout) * 8 == len(combinations)
    for bpm in BPM_CHOICES:
        bucket_low = next(low for low, high in TEMPO_BUCKETS.values() if low <= bpm <= high)
        assert all(is_heldout(i, bpm, *key) == ((i, bucket_low, key) in heldout) for i in INSTRUMENTS for key in keys)
    training = set(combinations) - heldout
    for first, second in [(0, 1), (0, 2), (1, 2)]:
        all_pairs = {(combo[first], combo[second]) for combo in combinations}
        assert {(combo[first], combo[second]) for combo in training} == all_pairs


def test_sampled_specs_stay_on_their_side_of_the_split():
    rng = np.random.default_rng(0)
    train = [sample_spec(rng, "train") for _ in range(400)]
    heldout = [sample_spec(rng, "heldout") for _ in range(400)]
    assert not any(is_heldout(s.instrument, s.bpm, s.tonic, s.mode) for s in train)
    assert all(is_heldout(s.instrument, s.bpm, s.tonic, s.mode) for s in heldout)
    assert {s.instrument for s in heldout} == set(INSTRUMENTS)
    with pytest.raises(ValueError, match="split must be one of"):
        sample_spec(rng, "test")


def read_folder(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_generator_is_deterministic_by_seed_whatever_the_worker_count(tmp_path):
    manifest = write_dataset(tmp_path / "a", count=4, seed=7, duration=2.0, write_midi=True)
    command = [sys.executable, "-m", "synthetic.cli", "--out", str(tmp_path / "b"), "--count", "4",
               "--seed", "7", "--duration", "2", "--workers", "2", "--write-midi"]
    subprocess.run(command, check=True, capture_output=True)
    write_dataset(tmp_path / "c", count=4, seed=8, duration=2.0, write_midi=True)
    first, second, other = (read_folder(tmp_path / name) for name in "abc")
    assert first == second
    assert first["train_000000.wav"] != other["train_000000.wav"]
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [row["path"] for row in rows] == [f"train_00000{index}.wav" for index in range(4)]
    assert all(row["duration"] == 2.0 and row["split"] == "train" for row in rows)
    assert len(first["train_000000.wav"]) == 44 + 2 * 2 * 16000


def test_a_clip_renders_the_same_after_other_clips_as_on_a_fresh_renderer():
    pieces = [make_piece(seed=5, index=index, split="train", duration=2.0) for index in range(3)]
    reused = Renderer(16000)
    in_sequence = [reused.render(piece.midi, 2.0) for piece in pieces]
    alone = Renderer(16000).render(pieces[-1].midi, 2.0)
    assert np.array_equal(in_sequence[-1], alone)
    assert in_sequence[-1].shape == (32000,) and in_sequence[-1].dtype == np.float32
    assert np.sqrt(np.mean(np.square(alone))) == pytest.approx(0.1, rel=0.01)


def test_bad_requests_are_refused_with_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="count must be a positive"):
        write_dataset(tmp_path, count=0)
    with pytest.raises(ValueError, match="split must be one of"):
        write_dataset(tmp_path, count=1, split="validation")
    with pytest.raises(ValueError, match="instrument must be one of"):
        PieceSpec("kazoo", 120, 0, "major", False, "busy")
    with pytest.raises(ValueError, match="mode must be one of"):
        PieceSpec("piano", 120, 0, "dorian", False, "busy")


def test_rewording_captions_leaves_the_music_as_it_was():
    # The music comes from the clip's own stream alone: composing from it without any caption gives the same MIDI.
    for index in range(5):
        rng = clip_rng(3, index, "train")
        spec = sample_spec(rng, "train")
        piece = make_piece(seed=3, index=index, split="train", duration=4.0)
        assert piece.spec == spec
        expected = compose(spec, 4.0, rng)
        assert [(note.pitch, note.start) for part in piece.midi.instruments for note in part.notes] == [
            (note.pitch, note.start) for part in expected.instruments for note in part.notes]


def test_melody_stems_are_the_clips_without_their_drums(tmp_path):
    manifest = write_dataset(tmp_path, count=6, seed=3, duration=2.0, write_melody=True)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    with_drums = [row for row in rows if row["drums"]]
    assert with_drums and any(not row["drums"] for row in rows)
    for row in rows:
        if not row["drums"]:
            assert row["melody_path"] == row["path"]
    row = with_drums[0]
    assert row["melody_path"] == row["path"].replace(".wav", ".melody.wav")
    mix, stem = (soundfile.read(tmp_path / row[name], dtype="float32")[0] for name in ("path", "melody_path"))
    drums_only = make_piece(seed=3, index=row["index"], split="train", duration=2.0).midi
    drums_only.instruments = [instrument for instrument in drums_only.instruments if instrument.is_drum]
    drums = Renderer(16000).render(drums_only, 2.0)
    # The mix is a sum of the stem and the drums (each rendered alone, then scaled): a least-squares fit of the
    # mix on the two leaves almost nothing, and needs both.
    parts = np.stack([stem, drums], axis=1).astype(np.float64)
    weights, *_ = np.linalg.lstsq(parts, mix.astype(np.float64), rcond=None)
    residual = mix - parts @ weights
    assert np.mean(residual ** 2) < 1e-3 * np.mean(mix.astype(np.float64) ** 2)
    assert (weights > 0.1).all()
