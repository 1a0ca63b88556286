"""Long-form generation: the window plan, and a clip of 3x the context whose every window is prompted with the tail before it."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from musicgen import MusicGen
from musicgen.config import Sampling
from musicgen.generate import generate_codes
from musicgen.long_form import Window, default_stride, plan_windows

from tiny_models import TINY_FRAME_RATE, save_tiny_musicgen

WINDOW = 37   # max_positions 40 with the delay pattern over K=4: 37 frames


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    model = MusicGen.from_pretrained(save_tiny_musicgen(tmp_path_factory.mktemp("tiny")), device="cpu")
    assert model.max_frames == WINDOW
    return model


def test_default_stride_is_audiocrafts_18_of_30_seconds():
    assert default_stride(1500) == 900 and default_stride(30) == 18
    assert default_stride(2) == 1 and default_stride(1) == 1


def test_plan_of_a_clip_longer_than_a_window():
    assert plan_windows(0, 111, WINDOW, 20) == [
        Window(0, 0, 37), Window(20, 37, 57), Window(40, 57, 77), Window(60, 77, 97), Window(80, 97, 111)]


def test_a_prompt_that_fits_is_kept_whole_and_a_longer_one_by_its_tail():
    assert plan_windows(30, 50, WINDOW, 20) == [Window(0, 30, 37), Window(20, 37, 50)]
    assert plan_windows(60, 80, WINDOW, 20) == [Window(43, 60, 80)]
    assert plan_windows(5, 30, WINDOW, 20) == [Window(0, 5, 30)]


@given(prompt=st.integers(0, 200), extra=st.integers(1, 300), window=st.integers(2, 60), data=st.data())
def test_windows_cover_the_clip_and_carry_the_overlap(prompt, extra, window, data):
    stride = data.draw(st.integers(1, window - 1))
    windows = plan_windows(prompt, prompt + extra, window, stride)
    assert windows[0].known == prompt and windows[-1].end == prompt + extra
    for before, after in zip(windows, windows[1:]):
        assert after.known == before.end and after.start == before.start + stride
        assert after.prompt_frames == window - stride
    for item in windows:
        assert 0 <= item.start and item.known < item.end and item.frames <= window
        assert item.prompt_frames < window


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="stride"):
        plan_windows(0, 100, WINDOW, WINDOW)
    with pytest.raises(ValueError, match="stride"):
        plan_windows(0, 100, WINDOW, 0)
    with pytest.raises(ValueError, match="longer than its prompt"):
        plan_windows(10, 10, WINDOW, 20)


def test_three_contexts_generate_in_full_and_repeat_with_the_seed(model):
    calls = []
    wav, codes = model.generate(["epic", "slow bass"], duration=3 * model.max_duration, seed=4, return_codes=True,
                                progress=lambda done, total: calls.append((done, total)))
    assert codes.shape == (2, 4, 3 * WINDOW) and wav.shape == (2, 1, 3 * WINDOW * 8)
    assert [done for done, _ in calls] == list(range(1, len(calls) + 1)) and {total for _, total in calls} == {len(calls)}
    again = model.generate(["epic", "slow bass"], duration=3 * model.max_duration, seed=4, return_codes=True)[1]
    assert torch.equal(codes, again)


def window_codes(model: MusicGen, prompt: str, prompt_codes: torch.Tensor | None, frames: int) -> torch.Tensor:
    """One window made directly by generate_codes (greedy, guided), the reference for the long-form output."""
    condition, mask = model.conditioner([prompt])
    return generate_codes(model.lm, model.pattern_provider.get_pattern(frames), condition, mask,
                          sampling=Sampling(use_sampling=False, cfg_coef=3.0), prompt=prompt_codes)


def test_every_window_is_prompted_with_the_tail_of_the_one_before(model):
    codes = model.generate(["epic"], duration=111 / TINY_FRAME_RATE, stride=0.02, use_sampling=False, cfg_coef=3.0,
                           return_codes=True)[1]
    assert torch.equal(codes[..., :37], window_codes(model, "epic", None, 37))
    for start, known, end in [(20, 37, 57), (40, 57, 77), (60, 77, 97), (80, 97, 111)]:
        assert torch.equal(codes[..., start:end], window_codes(model, "epic", codes[..., start:known], end - start))


def test_continuing_a_prompt_longer_than_a_window_keeps_it_whole_and_continues_its_tail(model):
    prompt_wav = torch.randn(1, 1, 60 * 8) * 0.3
    prompt_codes = model.codec.encode(prompt_wav)
    codes = model.generate_continuation(prompt_wav, 8000, ["epic"], duration=0.08, stride=0.02, use_sampling=False,
                                        cfg_coef=3.0, return_codes=True)[1]
    assert codes.shape == (1, 4, 80) and torch.equal(codes[..., :60], prompt_codes)
    assert torch.equal(codes[..., 43:], window_codes(model, "epic", prompt_codes[..., 43:], 37))
