"""The paraphrase lists are held out: none of their instrument, tempo or mood phrases is one the caption templates
write, the lists for choosing share nothing with the reported ones, and slow/fast pairs differ in the tempo word
alone."""
import re

import numpy as np
import pytest

from evaluation.paraphrases import CHOOSING, REPORTING, WORDINGS, paraphrases, slow_fast_pairs, word_tempo_prompts
from musicgen.beat_clock import stated_bpm
from synthetic.captions import (BPM_FORMS, DENSITY_WORDS, DRUM_PHRASES, FRAMES, INSTRUMENT_WORDS, KEY_FORMS, MOOD_WORDS,
                                NOUNS, TEMPO_WORDS, describe)
from synthetic.compose import INSTRUMENTS
from synthetic.split import TEMPO_BUCKETS, sample_spec

wordings = pytest.mark.parametrize("wording", WORDINGS.values(), ids=WORDINGS.keys())
TEMPLATE_PHRASES = [phrase for table in (INSTRUMENT_WORDS, TEMPO_WORDS, MOOD_WORDS, DENSITY_WORDS)
                    for phrases in table.values() for phrase in phrases] + [
    *NOUNS, *FRAMES, *DRUM_PHRASES, *BPM_FORMS, *KEY_FORMS]


@wordings
def test_no_held_out_phrase_is_a_template_word(wording):
    assert not set(TEMPLATE_PHRASES) & set(wording.phrases())


@wordings
def test_no_held_out_phrase_appears_in_training_captions(wording):
    rng = np.random.default_rng(0)
    captions = " | ".join(describe(sample_spec(rng, "train"), rng).lower() for _ in range(3000))
    found = [phrase for phrase in wording.phrases() if re.search(rf"\b{re.escape(phrase.lower())}\b", captions)]
    assert not found


# The only words the caption templates share with the held-out lists: small words, those that name drums, and a few
# words of the templates' first version. A new template word must not bring a held-out word into training.
SHARED_WORDS = {"a", "an", "the", "of", "for", "in", "is", "and", "by", "over", "with", "backed", "beat", "drum", "drums",
                "groove", "kit", "acoustic", "bass", "drawbar", "grand", "key", "lead", "line", "melody", "orchestra",
                "organ", "piece", "section", "solo", "string", "synth", "tempo", "track", "tune", "upright"}


def words(text):
    return set(re.findall(r"[a-z0-9']+", text.lower()))


@wordings
def test_the_templates_share_no_word_with_the_held_out_lists_but_a_few_generic_ones(wording):
    held_out = wording.phrases() + [*wording.phrasings, *wording.drum_phrasings]
    shared = set().union(*map(words, TEMPLATE_PHRASES)) & set().union(*map(words, held_out))
    assert shared <= SHARED_WORDS, shared - SHARED_WORDS


def test_the_choosing_lists_share_no_phrase_or_prompt_with_the_reported_ones():
    assert not set(CHOOSING.phrases()) & set(REPORTING.phrases())
    assert not set(CHOOSING.phrasings + CHOOSING.drum_phrasings) & set(REPORTING.phrasings + REPORTING.drum_phrasings)
    chosen, reported = ({prompt.prompt for prompt in paraphrases(wording) + word_tempo_prompts(wording)}
                        for wording in (CHOOSING, REPORTING))
    assert not chosen & reported


@wordings
def test_lists_cover_every_instrument_and_name_known_classes(wording):
    prompts = paraphrases(wording) + word_tempo_prompts(wording)
    assert len(paraphrases(wording)) == 32 and len(word_tempo_prompts(wording)) == 48
    assert {prompt.instrument for prompt in paraphrases(wording)} == set(INSTRUMENTS)
    assert all(prompt.instrument in INSTRUMENTS for prompt in prompts)
    assert all(prompt.tempo_bucket in TEMPO_BUCKETS and prompt.drums for prompt in word_tempo_prompts(wording))
    assert all(stated_bpm(prompt.prompt) is None for prompt in word_tempo_prompts(wording))
    assert len({prompt.prompt for prompt in prompts}) == len(prompts)


@wordings
def test_pairs_differ_in_the_tempo_word_alone(wording):
    for slow, fast in slow_fast_pairs(wording):
        slow_words, fast_words = slow.prompt.split(), fast.prompt.split()
        changed = [(a, b) for a, b in zip(slow_words, fast_words) if a != b]
        changed = [pair for pair in changed if pair[0] not in ("a", "an")]
        assert len(slow_words) == len(fast_words) and len(changed) == 1, (slow.prompt, fast.prompt)
        assert (slow.tempo_bucket, fast.tempo_bucket) == ("slow", "fast")
