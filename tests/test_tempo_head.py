"""Tempo from words: the stated tempo cut out of a caption, a head that learns slow from fast on the frozen token
states wherever the tempo word stands, fitted by musicgen-train, whose tempo reaches the beat clock of a prompt that
states no number."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from musicgen import MusicGen
from musicgen.beat_clock import with_inferred_tempo, without_tempo
from musicgen.conditioners import TextConditioner
from musicgen.config import LMConfig
from musicgen.lm import LM
from musicgen.tempo_head import TempoHead
from musicgen.train.setup import ConditionedLM
from musicgen.train.tempo import fit_tempo_head
from musicgen.train.token_cache import write_token_cache
from synthetic.captions import describe
from synthetic.split import sample_spec

from lm_train_inputs import CARD, NUM_CODEBOOKS, make_sources, train_config, train_in_process

SLOW = {"slow piano": 60, "gentle strings": 70, "calm flute": 65, "laid-back guitar": 80, "a slow organ song": 75}
FAST = {"fast piano": 170, "energetic strings": 160, "rapid flute": 180, "driving guitar": 150,
        "a fast organ song": 165}


@pytest.mark.parametrize("caption, words", [
    ("fast piano at 160 BPM in A minor", "fast piano in A minor"),
    ("organ, 90 BPM, F# minor, drums", "organ, F# minor, drums"),
    ("brass at a tempo of 140 BPM with drums", "brass with drums"),
    ("electric bass 140 bpm with a drum beat", "electric bass with a drum beat"),
    ("calm flute, tempo: 70", "calm flute"), ("slow sad strings", "slow sad strings")])
def test_without_tempo_keeps_only_the_words(caption, words):
    assert without_tempo(caption) == words


def test_a_stated_tempo_wins_and_a_row_without_condition_gets_no_clock():
    stated = torch.tensor([0.0, 0.002, 0.0])
    inferred = torch.tensor([90.0, 150.0, 0.0])                    # the head's: 0 for the empty prompt
    assert torch.allclose(with_inferred_tempo(stated, inferred, 1000.0), torch.tensor([0.0015, 0.002, 0.0]))
    assert with_inferred_tempo(stated, None, 1000.0) is stated     # an LM without a head: as before


@pytest.fixture(scope="module")
def minilm():
    return TextConditioner.load("minilm")


def predicted(head: TempoHead, conditioner: TextConditioner, prompts: list[str]) -> torch.Tensor:
    return head(*conditioner(prompts)).detach()


def test_the_head_learns_slow_from_fast_and_carries_it_to_other_words(minilm):
    head = TempoHead(minilm.dim)
    assert torch.allclose(predicted(head, minilm, ["anything"]), torch.tensor([120.0]))  # untrained: the centre
    captions = [*SLOW, *FAST]
    error = fit_tempo_head(head, minilm, captions, [*SLOW.values(), *FAST.values()], seed=0)
    assert error < 0.1
    bpm = predicted(head, minilm, captions)
    assert bpm[:len(SLOW)].max() < 100 < 130 < bpm[len(SLOW):].min()
    # Words it never saw: synonyms and instruments of the other set.
    slow, fast = predicted(head, minilm, ["a slow brass tune", "a fast brass tune"])
    assert fast > 1.3 * slow, (slow, fast)
    # The fit starts from a seeded head: the same examples give the same head.
    again = TempoHead(minilm.dim)
    fit_tempo_head(again, minilm, captions, [*SLOW.values(), *FAST.values()], seed=0)
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), again.state_dict().values()))


def test_the_tempo_word_speaks_for_the_prompt_wherever_it_stands(minilm):
    # Fitted on 300 captions of the synthetic data (their numbers cut out), where a tempo word leads or stands among
    # tags, it hears the word at the end of long prompts of words it never saw.
    rng = np.random.default_rng(0)
    specs = [sample_spec(rng, "train") for _ in range(300)]
    captions = [without_tempo(describe(spec, rng)) for spec in specs]
    head = TempoHead(minilm.dim)
    fit_tempo_head(head, minilm, captions, [spec.bpm for spec in specs], seed=0, max_steps=300)
    for phrasing in ("record a take of a brass band and a drummer in a big hall with lots of echo, keep it {}",
                     "the drummer and the bassist play it {} tonight"):
        slow, fast = predicted(head, minilm, [phrasing.format("slow"), phrasing.format("fast")])
        assert slow < 100 and fast > 1.5 * slow, (phrasing, slow, fast)


def test_training_fits_the_head_and_generation_feeds_its_tempo_to_the_clock(tmp_path):
    codec, _ = make_sources(tmp_path / "sources")
    generator = torch.Generator().manual_seed(0)
    clips = [(torch.randint(0, CARD, (NUM_CODEBOOKS, 8), generator=generator), {"description": caption, "bpm": bpm})
             for caption, bpm in [*SLOW.items(), *FAST.items()]]
    clips.append((clips[0][0], {"description": "slow cello at 64 BPM"}))  # its BPM from its caption
    write_token_cache(tmp_path / "tokens" / "train", clips, CARD, frame_rate=1000.0)
    config = train_config((codec, "minilm"), tmp_path / "run", tmp_path / "tokens", steps=2, checkpoint_every=2)
    config["model"]["lm"].update(condition_dim=384, beat_clock=True, tempo_head=True)
    export = train_in_process(config)

    model = MusicGen.from_pretrained(export, device="cpu")
    words = ["a slow guitar tune", "a fast guitar tune"]
    slow, fast = model.lm.inferred_bpm(*model.conditioner(words))
    assert fast > 1.3 * slow, (slow, fast)
    received = []
    model.lm.beat_clock.register_forward_hook(lambda module, args, output: received.append(args[1].clone()))
    model.generate([*words, "a fast guitar tune at 90 BPM", ""], duration=0.004, seed=0, cfg_coef=3.0)
    rates = received[0][:, 0] * 60 * model.frame_rate  # the BPM of each row's clock: 4 conditioned, 4 null rows
    assert torch.allclose(rates, torch.tensor([slow, fast, 90.0, 0.0, 0.0, 0.0, 0.0, 0.0]), rtol=1e-4)


def test_tempo_text_dropout_hides_the_stated_tempo_from_the_words_not_from_the_clock(tmp_path):
    _, text_encoder = make_sources(tmp_path)
    conditioner = TextConditioner.load(text_encoder)
    lm = LM(LMConfig(num_codebooks=NUM_CODEBOOKS, cardinality=CARD, dim=32, num_heads=2, num_layers=1, ffn_dim=64,
                     condition_dim=conditioner.dim, max_positions=16, beat_clock=True))
    conditioned = ConditionedLM(lm, conditioner, frame_rate=1000.0, tempo_text_dropout=1.0)
    texts, clocks = [], []
    conditioner.register_forward_pre_hook(lambda module, args: texts.append(args[0]))
    lm.beat_clock.register_forward_hook(lambda module, args, output: clocks.append(args[1][:, 0]))
    captions = ["fast drums at 150 BPM", "slow piano", ""]
    inputs = torch.zeros(3, NUM_CODEBOOKS, 4, dtype=torch.long)
    for training in (True, False):
        conditioned.train(training)(inputs, captions, torch.zeros(3))
    assert texts == [["fast drums", "slow piano", ""], captions]     # evaluation keeps the captions whole
    expected = torch.tensor([150 / 60 / 1000, 0.0, 0.0])
    assert all(torch.allclose(clock, expected) for clock in clocks)


def test_a_tempo_head_needs_a_clock_and_captions_of_known_bpm(tmp_path):
    with pytest.raises(ValueError, match="lm.tempo_head feeds the beat clock: it needs lm.beat_clock true"):
        LMConfig(tempo_head=True)
    sources = make_sources(tmp_path / "sources")
    write_token_cache(tmp_path / "tokens" / "train", [(torch.zeros(NUM_CODEBOOKS, 8, dtype=torch.long),
                                                       {"description": "slow piano"})], CARD, frame_rate=1000.0)
    config = train_config(sources, tmp_path / "run", tmp_path / "tokens", steps=2, checkpoint_every=2)
    config["model"]["lm"].update(beat_clock=True, tempo_head=True)
    with pytest.raises(ValueError, match="tempo_head learns from clips whose BPM is known .* none of the 1 clips"):
        train_in_process(config)
