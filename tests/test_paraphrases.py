"""The paraphrase list is held out: none of its instrument, tempo or mood phrases is one the caption templates
write, and its slow/fast pairs differ in the tempo word alone."""
import re

import numpy as np

from evaluation.paraphrases import (
    FAST_PHRASES,
    INSTRUMENT_PHRASES,
    MOOD_PHRASES,
    SLOW_PHRASES,
    paraphrases,
    slow_fast_pairs,
    word_tempo_prompts,
)
from musicgen.beat_clock import stated_bpm
from synthetic.captions import INSTRUMENT_WORDS, MOOD_WORDS, TEMPO_WORDS, describe
from synthetic.compose import INSTRUMENTS
from synthetic.split import TEMPO_BUCKETS, sample_spec


def held_out_phrases() -> list[str]:
    return [phrase for phrases in INSTRUMENT_PHRASES.values() for phrase in phrases] + [
        *SLOW_PHRASES, *FAST_PHRASES, *MOOD_PHRASES]


def test_no_held_out_phrase_is_a_template_word():
    template_words = {word for table in (INSTRUMENT_WORDS, TEMPO_WORDS, MOOD_WORDS) for words in table.values()
                      for word in words}
    assert not template_words & set(held_out_phrases())


def test_no_held_out_phrase_appears_in_training_captions():
    rng = np.random.default_rng(0)
    captions = " | ".join(describe(sample_spec(rng, "train"), rng).lower() for _ in range(3000))
    found = [phrase for phrase in held_out_phrases() if re.search(rf"\b{re.escape(phrase.lower())}\b", captions)]
    assert not found


def test_lists_cover_every_instrument_and_name_known_classes():
    prompts = paraphrases() + word_tempo_prompts()
    assert {prompt.instrument for prompt in paraphrases()} == set(INSTRUMENTS)
    assert all(prompt.instrument in INSTRUMENTS for prompt in prompts)
    assert all(prompt.tempo_bucket in TEMPO_BUCKETS and prompt.drums for prompt in word_tempo_prompts())
    assert all(stated_bpm(prompt.prompt) is None for prompt in word_tempo_prompts())
    assert len({prompt.prompt for prompt in prompts}) == len(prompts)


def test_pairs_differ_in_the_tempo_word_alone():
    for slow, fast in slow_fast_pairs():
        slow_words, fast_words = slow.prompt.split(), fast.prompt.split()
        changed = [(a, b) for a, b in zip(slow_words, fast_words) if a != b]
        changed = [pair for pair in changed if pair[0] not in ("a", "an")]
        assert len(slow_words) == len(fast_words) and len(changed) == 1, (slow.prompt, fast.prompt)
        assert (slow.tempo_bucket, fast.tempo_bucket) == ("slow", "fast")
