"""Captions in varied wording that state only what the piece holds.

    "an upbeat piano tune at 140 BPM in A major with drums"
    "slow sad strings in D minor"
    "organ, 90 BPM, F# minor, drums"

    "a recording of a jaunty euphonium theme in G major with a drum kit"

The instrument is always named, drums are mentioned exactly when the piece has them, and the
tempo is given as a number, a word for its bucket, or both; key, mood (from the mode) and note
density appear some of the time. Several words name each instrument, tempo bucket and mood, and a
quarter of the prose captions are framed ("a recording of ...", "... for a film scene"), so that a
model learns what the words mean rather than one wording; none of them is a word of the held-out
paraphrase lists (evaluation/paraphrases.py, checked by tests/test_paraphrases.py).
"""
from __future__ import annotations

import numpy as np

from .compose import PieceSpec
from .split import tempo_bucket

INSTRUMENT_WORDS = {
    "piano": ("piano", "grand piano", "acoustic piano", "upright piano", "solo piano", "concert piano",
              "honky-tonk piano", "parlour piano", "felt piano", "stage piano"),
    "strings": ("strings", "string ensemble", "string section", "string orchestra", "bowed strings",
                "orchestral strings", "legato strings", "lush strings", "arco strings", "silky strings"),
    "guitar": ("guitar", "nylon guitar", "acoustic guitar", "classical guitar", "fingerpicked guitar",
               "dreadnought guitar", "folk guitar", "picked guitar", "unplugged guitar", "parlor guitar"),
    "flute": ("flute", "solo flute", "concert flute", "wooden flute", "airy flute", "alto flute", "bamboo flute",
              "silver flute", "pastoral flute", "lilting flute"),
    "organ": ("organ", "drawbar organ", "electric organ", "hammond organ", "rock organ", "jazz organ",
              "tonewheel organ", "b3 organ", "combo organ", "farfisa organ"),
    "brass": ("brass", "brass section", "horns", "brass ensemble", "horn section", "brass quintet", "french horns",
              "massed horns", "brass choir", "euphonium"),
    "bass": ("bass", "electric bass", "fingered bass", "bass line", "deep bass", "rock bass", "funk bass",
             "walking bass", "bass riff", "picked bass"),
    "synth lead": ("synth lead", "square lead", "lead synth", "saw lead", "square-wave synth", "synth melody",
                   "sawtooth lead", "mono synth", "electronic lead", "buzzy synth"),
}
TEMPO_WORDS = {
    "slow": ("slow", "gentle", "laid-back", "calm", "slow-paced", "lazy", "slow-moving", "sleepy", "tranquil",
             "ambling", "downtempo", "serene"),
    "moderate": ("mid-tempo", "moderate", "steady", "medium-paced", "medium", "walking-pace", "even-paced",
                 "mid-paced"),
    "upbeat": ("upbeat", "lively", "bouncy", "peppy", "jaunty", "spirited", "perky", "sprightly"),
    "fast": ("fast", "energetic", "driving", "rapid", "high-energy", "racing", "swift", "fast-paced", "furious",
             "nimble", "galloping", "hasty"),
}
MOOD_WORDS = {"major": ("happy", "bright", "cheerful", "sunny", "hopeful", "glad", "festive", "optimistic",
                        "radiant", "carefree"),
              "minor": ("sad", "dark", "melancholic", "moody", "somber", "tragic", "wistful", "haunting", "bleak",
                        "tearful")}
DENSITY_WORDS = {"sparse": ("sparse", "minimal"), "moderate": (), "busy": ("busy", "intricate")}
NOUNS = ("tune", "melody", "piece", "song", "track", "loop", "theme", "number", "jam")
BPM_FORMS = ("at {bpm} BPM", "at {bpm} bpm", "{bpm} BPM", "at a tempo of {bpm} BPM")
KEY_FORMS = ("in {key} {mode}", "in the key of {key} {mode}")
DRUM_PHRASES = ("with drums", "with a drum beat", "over a solid drum groove", "backed by drums", "with a drum kit")
FRAMES = ("a recording of {}", "{}, recorded in a studio", "the sound of {}", "here is {}", "{} for a film scene",
          "imagine {}")
MENTION_PROBABILITY = {"bpm": 0.8, "tempo_word": 0.5, "key": 0.85, "mood": 0.3, "density": 0.3}
TAG_STYLE_PROBABILITY = 0.2
PLAYED_ON_PROBABILITY = 0.25
FRAME_PROBABILITY = 0.25


def describe(spec: PieceSpec, rng: np.random.Generator, complete: bool = False) -> str:
    """A caption of `spec`; `complete` always states instrument, BPM, key and mode (for evaluation prompts)."""
    mentions = {name: complete and name in ("bpm", "key") or rng.random() < probability
                for name, probability in MENTION_PROBABILITY.items()}
    mentions["tempo_word"] = mentions["tempo_word"] or not mentions["bpm"]
    words = {
        "instrument": pick(rng, INSTRUMENT_WORDS[spec.instrument]),
        "tempo_word": pick(rng, TEMPO_WORDS[tempo_bucket(spec.bpm)]) if mentions["tempo_word"] else None,
        "mood": pick(rng, MOOD_WORDS[spec.mode]) if mentions["mood"] else None,
        "density": pick(rng, DENSITY_WORDS[spec.density]) if mentions["density"] else None,
    }
    if rng.random() < TAG_STYLE_PROBABILITY:
        return tag_caption(spec, words, mentions, rng)
    caption = prose_caption(spec, words, mentions, rng)
    return pick(rng, FRAMES).format(caption) if rng.random() < FRAME_PROBABILITY else caption


def pick(rng: np.random.Generator, choices: tuple[str, ...]) -> str | None:
    return str(choices[rng.integers(len(choices))]) if choices else None


def prose_caption(spec: PieceSpec, words: dict, mentions: dict, rng: np.random.Generator) -> str:
    """'an upbeat happy piano tune at 140 BPM in A major with drums', 'a calm melody played on organ in D minor'."""
    head = [words[name] for name in ("tempo_word", "mood", "density") if words[name]]
    if rng.random() < PLAYED_ON_PROBABILITY:
        head += [pick(rng, NOUNS), "played on", words["instrument"]]
    else:
        head.append(words["instrument"])
        if rng.random() < 0.7:
            head.append(pick(rng, NOUNS))
    if len(head) > 1 and rng.random() < 0.7:
        head.insert(0, "an" if head[0][0] in "aeiou" else "a")
    tails = []
    if mentions["bpm"]:
        tails.append(pick(rng, BPM_FORMS).format(bpm=spec.bpm))
    if mentions["key"]:
        tails.append(pick(rng, KEY_FORMS).format(key=spec.key, mode=spec.mode))
    if rng.random() < 0.5:
        tails.reverse()
    if spec.drums:
        tails.append(pick(rng, DRUM_PHRASES))
    return " ".join(head + tails)


def tag_caption(spec: PieceSpec, words: dict, mentions: dict, rng: np.random.Generator) -> str:
    """'organ, 90 BPM, F# minor, drums': the instrument first, the other tags shuffled."""
    tags = [words[name] for name in ("tempo_word", "mood", "density") if words[name]]
    if mentions["bpm"]:
        tags.append(f"{spec.bpm} BPM")
    if mentions["key"]:
        tags.append(f"{spec.key} {spec.mode}")
    if spec.drums:
        tags.append("drums")
    order = rng.permutation(len(tags))
    return ", ".join([words["instrument"]] + [tags[index] for index in order])
