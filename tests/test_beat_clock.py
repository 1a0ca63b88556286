"""The beat clock: tempo read from prompts, the phase features, an LM unchanged by a new clock, and a tiny LM
that learns to put its hits on the beat of the stated tempo only with it, across long-form windows too."""
from __future__ import annotations

import re
from functools import partial

import pytest
import torch

from infra.train_log import read_jsonl
from musicgen import MusicGen
from musicgen.beat_clock import BEATS_PER_BAR, beat_clock, beats_per_frame, clock_features, stated_bpm
from musicgen.config import LMConfig, Sampling
from musicgen.lm import LM
from musicgen.long_form import default_stride, generate_in_windows, plan_windows
from musicgen.train.token_cache import write_token_cache

from lm_train_inputs import CARD, NUM_CODEBOOKS, make_sources, train_config, train_in_process

FRAME_RATE = 20.0  # a tiny codec of hop 400 at 8 kHz: a beat of 3 frames is 400 BPM


@pytest.mark.parametrize("prompt, bpm", [("an upbeat piano tune at 140 BPM in A major", 140.0),
                                         ("organ, 90 bpm, F# minor", 90.0), ("at 96.5 beats per minute", 96.5),
                                         ("drums 120bpm", 120.0), ("slow sad strings in D minor", None),
                                         ("", None), ("140 bpms of fun", None), ("140 BPM", 140.0),
                                         ("140bpm", 140.0), ("BPM 140", 140.0), ("bpm: 140", 140.0),
                                         ("140-bpm", 140.0), ("tempo 140", 140.0), ("140 beats per minute", 140.0),
                                         ("rock, tempo: 96, 96 bpm", 96.0), ("track 5 in mp3, 120 BPM", 120.0)])
def test_stated_bpm(prompt, bpm):
    assert stated_bpm(prompt) == bpm


@pytest.mark.parametrize("prompt, message", [("1e3 bpm", "1000 BPM; expected 20 to 400"),
                                             ("-120 bpm", "-120 BPM; expected 20 to 400"),
                                             ("1" * 40 + " bpm", r"1\.11111e\+39 BPM; expected 20 to 400"),
                                             ("1e999 BPM", "inf BPM"), ("0 BPM", "0 BPM; expected"),
                                             ("tempo 12", "12 BPM; expected"),
                                             ("120 bpm, or tempo 90", r"states 2 tempi \(90, 120 BPM\)")])
def test_a_stated_tempo_out_of_range_or_twice_is_an_error_naming_the_prompt(prompt, message):
    with pytest.raises(ValueError, match=f"the prompt {re.escape(repr(prompt))} .*{message}"):
        stated_bpm(prompt)
    assert stated_bpm(prompt, strict=False) is None  # a training caption mangled by word dropout: no tempo


def test_clock_features_follow_the_bar_and_start_where_the_window_does():
    rate = beats_per_frame(["at 120 BPM", "no tempo", "at 60 BPM"], frame_rate=50.0)
    assert torch.allclose(rate, torch.tensor([0.04, 0.0, 0.02]))
    positions = torch.arange(300)
    features = clock_features(positions, beat_clock(rate))
    assert features.shape == (3, 300, 16)
    bar = round(BEATS_PER_BAR / 0.04)                    # 100 frames at 120 BPM
    assert torch.allclose(features[0, :bar], features[0, bar:2 * bar], atol=1e-4)
    assert not torch.allclose(features[0, :bar // 2], features[0, bar // 2:bar], atol=1e-2)
    assert features[1].abs().max() == 0                  # no stated tempo: no clock
    # A window whose step 0 is frame 37 of the clip sees the clip's clock from frame 37 on.
    shifted = clock_features(positions[:100], beat_clock(rate, torch.tensor([37.0, 37.0, 37.0])))
    assert torch.allclose(shifted, features[:, 37:137], atol=1e-4)


def test_a_new_beat_clock_changes_nothing_and_a_clock_less_row_stays_so():
    torch.manual_seed(0)
    config = LMConfig(num_codebooks=2, cardinality=8, dim=32, num_heads=2, num_layers=1, ffn_dim=64, condition_dim=16,
                      max_positions=32)
    lm = LM(config).eval()
    sequence, condition = torch.randint(0, 8, (2, 2, 20)), torch.randn(2, 3, 16)
    mask = torch.ones(2, 3, dtype=torch.bool)
    clock = beat_clock(torch.tensor([0.3, 0.0]))
    before = lm(sequence, condition, mask)
    lm.add_beat_clock()
    assert lm.config.beat_clock and torch.equal(lm(sequence, condition, mask, clock), before)
    torch.nn.init.normal_(lm.beat_clock.projection.weight)
    after = lm(sequence, condition, mask, clock)
    assert not torch.allclose(after[0], before[0]) and torch.allclose(after[1], before[1])
    with pytest.raises(ValueError, match=r"clock must be \[B=2, 2\], got \(1, 2\)"):
        lm(sequence, condition, mask, clock[:1])


PERIODS = {"drums at 400 BPM": 3, "drums at 300 BPM": 4}  # frames a beat at 20 frames/s


def beat_grid(period: int, frames: int) -> torch.Tensor:
    """[K, frames]: code 1 on every beat, 0 between."""
    return (torch.arange(frames) % period == 0).long().expand(NUM_CODEBOOKS, frames)


def test_a_tiny_lm_puts_its_hits_on_the_stated_beat_only_with_a_clock(tmp_path):
    # Windows cropped anywhere in clips of a steady beat: where the first hit falls is known only from the clock.
    sources = make_sources(tmp_path / "sources", ratios=[8, 5, 5, 2])
    clips = [(beat_grid(period, 120), {"description": caption}) for caption, period in PERIODS.items()]
    write_token_cache(tmp_path / "tokens" / "train", clips, CARD, frame_rate=FRAME_RATE)
    config = train_config(sources, tmp_path / "plain", tmp_path / "tokens", steps=120, checkpoint_every=120,
                          optim={"lr": 3e-3}, data={"segment_seconds": 45 / FRAME_RATE})
    config["model"]["lm"]["max_positions"] = 48
    plain = train_in_process(config)
    tuned = {**config, "run_dir": str(tmp_path / "clock"), "init_from": str(plain), "add_beat_clock": True}
    del tuned["codec"], tuned["text_encoder"], tuned["model"]
    with_clock = train_in_process(tuned)

    plain_loss = read_jsonl(tmp_path / "plain" / "log.jsonl")[-1]["loss"]
    clock_loss = read_jsonl(tmp_path / "clock" / "log.jsonl")[-1]["loss"]
    assert clock_loss < 0.02 < 0.05 < plain_loss, (clock_loss, plain_loss)
    model = MusicGen.from_pretrained(with_clock)
    assert model.lm.config.beat_clock and model.lm.beat_clock.projection.weight.abs().max() > 0
    # Greedy, in windows: 100 frames take four windows of at most 45 frames, each picking up the clock where it starts.
    assert model.max_frames < 50
    _, codes = model.generate(list(PERIODS), duration=100 / FRAME_RATE, use_sampling=False, cfg_coef=1.0,
                              return_codes=True)
    assert torch.equal(codes, torch.stack([beat_grid(period, 100) for period in PERIODS.values()]))

    # Continuing a beat from a prompt that starts one frame into a bar and holds no hit: only the downbeat given
    # tells where the beats fall (the clock counts bars from it), here across windows too.
    windows = plan_windows(2, 100, model.max_frames, default_stride(model.max_frames))
    for caption, period in PERIODS.items():
        clip = beat_grid(period, 101)[None]
        condition, mask = model.conditioner([caption])
        continue_clip = partial(generate_in_windows, model.lm, model.pattern_provider, condition, mask,
                                sampling=Sampling(use_sampling=False, cfg_coef=1.0), windows=windows, prompt=clip[..., 1:3],
                                beats_per_frame=beats_per_frame([caption], FRAME_RATE))
        assert torch.equal(continue_clip(downbeat_frame=BEATS_PER_BAR * period - 1), clip[..., 1:])
        assert not torch.equal(continue_clip(downbeat_frame=0.0), clip[..., 1:])


def test_add_beat_clock_needs_a_model_to_fine_tune(tmp_path):
    config = train_config(make_sources(tmp_path), tmp_path / "run", tmp_path / "tokens", add_beat_clock=True)
    with pytest.raises(ValueError, match="add_beat_clock gives a fine-tuned .* sets model.lm.beat_clock: true instead"):
        train_in_process(config)
