"""Prompts worded unlike any training caption, written before the default model was trained and never used in it.

Three lists, each entry with what an analyser can check:

- PARAPHRASES: the instrument named by a word or phrasing the caption templates (synthetic/captions.py) never
  produce ("violins and cellos", "a pianist", "trumpets"), with moods and tempo words from outside the templates.
  Judged by instrument accuracy, beside the template wordings of the held-out prompts.
- WORD_TEMPO_PROMPTS: a tempo asked by words alone (no number), with drums so that the tempo can be measured.
  Judged by whether the measured tempo lands in the asked bucket (synthetic/split.py's TEMPO_BUCKETS).
- SLOW_FAST_PAIRS: two prompts that differ only in a slow word against a fast one. Judged by the ratio of the
  fast clip's measured tempo to the slow clip's.

tests/test_paraphrases.py checks that no instrument or tempo phrase here is one the caption templates use.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paraphrase:
    prompt: str
    instrument: str          # the class the instrument analysers should hear
    tempo_bucket: str | None  # the bucket the words ask for, if any
    drums: bool


# (instrument class, phrase naming it): none of these phrases appears in the caption templates.
INSTRUMENT_PHRASES = {
    "piano": ("a pianist", "the keys", "the ivories", "a keyboard player"),
    "strings": ("violins and cellos", "a chamber orchestra", "fiddles", "violas"),
    "guitar": ("a guitarist", "spanish six-string", "fingerstyle strumming", "a flamenco player"),
    "flute": ("a flautist", "a woodwind", "breathy pipe", "a fife"),
    "organ": ("a church organist", "a pipe organ", "a harmonium", "gospel organ chords"),
    "brass": ("trumpets", "trombones", "a fanfare band", "a tuba and cornets"),
    "bass": ("a bassist", "a low groove line", "a four-string", "low-end thump"),
    "synth lead": ("a synthesizer", "an 8-bit melody", "a chiptune beeper", "an analog synth"),
}
SLOW_PHRASES = ("unhurried", "leisurely", "sluggish", "relaxed")
FAST_PHRASES = ("quick", "brisk", "speedy", "frantic")
MOOD_PHRASES = ("joyful", "uplifting", "sorrowful", "gloomy")

# Phrasings the templates never produce; {instrument}, {mood}, {tempo} are filled from the phrases above.
PHRASINGS = (
    "I'd like some {mood} music played by {instrument}",
    "{instrument} carrying a tune that feels {mood}, nothing else",
    "Compose something {mood} with {instrument} in the lead",
    "Background music: {instrument}. Feeling: {mood}.",
)
DRUM_PHRASINGS = (
    "{article} {tempo} groove for {instrument} and a drummer",
    "{instrument} over {article} {tempo} beat, drums included",
    "Drums and {instrument}, keep it {tempo}",
    "make me {article} {tempo} track: {instrument}, with a drum kit behind",
)

TEMPLATE_TEMPO_WORDS = {
    "slow": "slow", "moderate": "mid-tempo", "upbeat": "upbeat", "fast": "fast",
}


def paraphrases() -> list[Paraphrase]:
    """32 prompts: every instrument in four phrasings, each with another of its phrases and a mood word."""
    prompts = []
    for instrument, phrases in INSTRUMENT_PHRASES.items():
        for index, (phrasing, phrase) in enumerate(zip(PHRASINGS, phrases)):
            mood = MOOD_PHRASES[(index + len(prompts) // len(PHRASINGS)) % len(MOOD_PHRASES)]
            prompts.append(Paraphrase(phrasing.format(instrument=phrase, mood=mood), instrument, None, False))
    return prompts


def slow_fast_pairs() -> list[tuple[Paraphrase, Paraphrase]]:
    """16 pairs: per instrument two phrasings, each with a slow word and a fast one (held-out synonyms and the
    templates' own "slow"/"fast"); the two prompts of a pair differ only in that word."""
    pairs = []
    for index, (instrument, phrases) in enumerate(INSTRUMENT_PHRASES.items()):
        for turn in range(2):
            phrasing = DRUM_PHRASINGS[(index + turn) % len(DRUM_PHRASINGS)]
            word_index = (2 * index + turn) % (len(SLOW_PHRASES) + 1)
            slow, fast = (("slow", "fast") if word_index == len(SLOW_PHRASES)
                          else (SLOW_PHRASES[word_index], FAST_PHRASES[word_index]))
            phrase = phrases[turn]
            pairs.append(tuple(Paraphrase(with_tempo(phrasing, phrase, word), instrument, bucket, True)
                               for word, bucket in ((slow, "slow"), (fast, "fast"))))
    return pairs


def word_tempo_prompts() -> list[Paraphrase]:
    """48 word-only tempo prompts: the 32 of the slow/fast pairs, and 16 asking for the middle buckets with the
    templates' own words ("mid-tempo", "upbeat") beside the instrument's template name."""
    prompts = [prompt for pair in slow_fast_pairs() for prompt in pair]
    for index, instrument in enumerate(INSTRUMENT_PHRASES):
        for bucket in ("moderate", "upbeat"):
            phrasing = DRUM_PHRASINGS[(index + len(bucket)) % len(DRUM_PHRASINGS)]
            prompts.append(Paraphrase(with_tempo(phrasing, instrument, TEMPLATE_TEMPO_WORDS[bucket]), instrument,
                                      bucket, True))
    return prompts


def with_tempo(phrasing: str, instrument: str, tempo: str) -> str:
    """A drum phrasing filled in, with "a" or "an" as the tempo word needs."""
    return phrasing.format(instrument=instrument, tempo=tempo, article="an" if tempo[0] in "aeiou" else "a")
