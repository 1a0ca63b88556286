"""Prompts worded unlike any training caption, never used in training.

Three lists, each entry with what an analyser can check, in two sets of wording: REPORTING, the lists the README
reports, and CHOOSING, as many prompts of the same kinds in other words, for choosing what ships
(`musicgen-eval --wording choosing`):

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


@dataclass(frozen=True)
class Wording:
    """Phrases the caption templates never write, and phrasings they never produce ({instrument}, {mood}, {tempo}
    are filled from the phrases; {article} is "a" or "an")."""

    instrument_phrases: dict[str, tuple[str, str, str, str]]  # instrument class -> four phrases naming it
    slow_phrases: tuple[str, ...]
    fast_phrases: tuple[str, ...]  # as many as slow_phrases: the pairs' words
    mood_phrases: tuple[str, ...]
    phrasings: tuple[str, str, str, str]
    drum_phrasings: tuple[str, ...]

    def phrases(self) -> list[str]:
        """Every instrument, tempo and mood phrase."""
        return [phrase for phrases in self.instrument_phrases.values() for phrase in phrases] + [
            *self.slow_phrases, *self.fast_phrases, *self.mood_phrases]


# The lists the README reports, written before the default model was trained: look at them once, at the end.
REPORTING = Wording(
    instrument_phrases={
        "piano": ("a pianist", "the keys", "the ivories", "a keyboard player"),
        "strings": ("violins and cellos", "a chamber orchestra", "fiddles", "violas"),
        "guitar": ("a guitarist", "spanish six-string", "fingerstyle strumming", "a flamenco player"),
        "flute": ("a flautist", "a woodwind", "breathy pipe", "a fife"),
        "organ": ("a church organist", "a pipe organ", "a harmonium", "gospel organ chords"),
        "brass": ("trumpets", "trombones", "a fanfare band", "a tuba and cornets"),
        "bass": ("a bassist", "a low groove line", "a four-string", "low-end thump"),
        "synth lead": ("a synthesizer", "an 8-bit melody", "a chiptune beeper", "an analog synth"),
    },
    slow_phrases=("unhurried", "leisurely", "sluggish", "relaxed"),
    fast_phrases=("quick", "brisk", "speedy", "frantic"),
    mood_phrases=("joyful", "uplifting", "sorrowful", "gloomy"),
    phrasings=("I'd like some {mood} music played by {instrument}",
               "{instrument} carrying a tune that feels {mood}, nothing else",
               "Compose something {mood} with {instrument} in the lead",
               "Background music: {instrument}. Feeling: {mood}."),
    drum_phrasings=("{article} {tempo} groove for {instrument} and a drummer",
                    "{instrument} over {article} {tempo} beat, drums included",
                    "Drums and {instrument}, keep it {tempo}",
                    "make me {article} {tempo} track: {instrument}, with a drum kit behind"),
)

# The lists for choosing what ships (`musicgen-eval --wording choosing`): the same kinds of phrase, none shared with
# the reporting lists or the templates, so that a choice made on them says nothing false about the reported figures.
CHOOSING = Wording(
    instrument_phrases={
        "piano": ("a pianoforte", "a baby grand", "a keyboardist", "an eighty-eight key instrument"),
        "strings": ("a string quartet", "a violinist", "cellists", "a symphonic violin section"),
        "guitar": ("a twelve-string", "a strummer", "a plucked acoustic", "a campfire six-string"),
        "flute": ("a piccolo", "a pan pipe", "a recorder", "a transverse woodwind"),
        "organ": ("a theatre organist", "cathedral pipes", "a wurlitzer", "a drawbar keyboard"),
        "brass": ("a trumpeter", "a bugle call", "flugelhorns", "a mariachi trumpet pair"),
        "bass": ("an upright bassist", "a double bass", "a slap-style bassist", "a thumping low end"),
        "synth lead": ("a retro video-game tune", "a modular synth", "a synthesized lead voice", "a keytar"),
    },
    slow_phrases=("plodding", "languid", "drowsy", "easygoing"),
    fast_phrases=("hurried", "zippy", "rushing", "breakneck"),
    mood_phrases=("cheery", "triumphant", "mournful", "brooding"),
    phrasings=("Play me something {mood} on {instrument}",
               "a {mood} piece featuring {instrument} alone",
               "{instrument}, {mood}, solo",
               "Soundtrack cue with {instrument}; the mood is {mood}"),
    drum_phrasings=("{article} {tempo} tune for {instrument} with a drummer",
                    "{instrument} and a drum kit playing something {tempo}",
                    "Percussion plus {instrument}, {tempo} please",
                    "record {article} {tempo} take of {instrument} backed by drums"),
)
WORDINGS = {"reporting": REPORTING, "choosing": CHOOSING}

TEMPLATE_TEMPO_WORDS = {
    "slow": "slow", "moderate": "mid-tempo", "upbeat": "upbeat", "fast": "fast",
}


def paraphrases(wording: Wording = REPORTING) -> list[Paraphrase]:
    """32 prompts: every instrument in four phrasings, each with another of its phrases and a mood word."""
    prompts = []
    for instrument, phrases in wording.instrument_phrases.items():
        for index, (phrasing, phrase) in enumerate(zip(wording.phrasings, phrases)):
            mood = wording.mood_phrases[(index + len(prompts) // len(wording.phrasings)) % len(wording.mood_phrases)]
            prompts.append(Paraphrase(phrasing.format(instrument=phrase, mood=mood), instrument, None, False))
    return prompts


def slow_fast_pairs(wording: Wording = REPORTING) -> list[tuple[Paraphrase, Paraphrase]]:
    """16 pairs: per instrument two phrasings, each with a slow word and a fast one (held-out synonyms and the
    templates' own "slow"/"fast"); the two prompts of a pair differ only in that word."""
    pairs = []
    drum_phrasings, slow_phrases = wording.drum_phrasings, wording.slow_phrases
    for index, (instrument, phrases) in enumerate(wording.instrument_phrases.items()):
        for turn in range(2):
            phrasing = drum_phrasings[(index + turn) % len(drum_phrasings)]
            word_index = (2 * index + turn) % (len(slow_phrases) + 1)
            slow, fast = (("slow", "fast") if word_index == len(slow_phrases)
                          else (slow_phrases[word_index], wording.fast_phrases[word_index]))
            phrase = phrases[turn]
            pairs.append(tuple(Paraphrase(with_tempo(phrasing, phrase, word), instrument, bucket, True)
                               for word, bucket in ((slow, "slow"), (fast, "fast"))))
    return pairs


def word_tempo_prompts(wording: Wording = REPORTING) -> list[Paraphrase]:
    """48 word-only tempo prompts: the 32 of the slow/fast pairs, and 16 asking for the middle buckets with the
    templates' own words ("mid-tempo", "upbeat") beside the instrument's template name."""
    prompts = [prompt for pair in slow_fast_pairs(wording) for prompt in pair]
    drum_phrasings = wording.drum_phrasings
    for index, instrument in enumerate(wording.instrument_phrases):
        for bucket in ("moderate", "upbeat"):
            phrasing = drum_phrasings[(index + len(bucket)) % len(drum_phrasings)]
            prompts.append(Paraphrase(with_tempo(phrasing, instrument, TEMPLATE_TEMPO_WORDS[bucket]), instrument,
                                      bucket, True))
    return prompts


def with_tempo(phrasing: str, instrument: str, tempo: str) -> str:
    """A drum phrasing filled in, with "a" or "an" as the tempo word needs."""
    return phrasing.format(instrument=instrument, tempo=tempo, article="an" if tempo[0] in "aeiou" else "a")
