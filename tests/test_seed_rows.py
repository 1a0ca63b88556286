"""The same seed, the same music: with sampling, prompt i of a request draws from its own stream, seeded from
(seed, i), so its tokens and audio never depend on the batch it was generated in; greedy decoding neither."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from musicgen import MusicGen
from musicgen.cli import main
from musicgen.generate import inverse_cdf

from tiny_models import TINY_FRAME_RATE, TINY_SAMPLE_RATE, save_tiny_musicgen

PROMPTS = ["lo-fi piano with soft drums", "epic", "slow bass guitar"]
WINDOW = 37                      # the tiny model's context, in frames
SECONDS = 20 / TINY_FRAME_RATE   # within one window


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_musicgen(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def model(model_dir):
    return MusicGen.from_pretrained(model_dir, device="cpu")


def stacked(results: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The (wav, codes) of several calls as one (wav [B, C, N], codes [B, K, T]), in order."""
    wavs, codes = zip(*results)
    return torch.cat(wavs), torch.cat(codes)


def one_by_one(generate, prompts: list[str], **options) -> tuple[torch.Tensor, torch.Tensor]:
    """generate([prompts[i]], first_row=i, return_codes=True) for every i, stacked."""
    return stacked([generate([prompt], first_row=row, return_codes=True, **options)
                    for row, prompt in enumerate(prompts)])


def assert_same(batched: tuple[torch.Tensor, torch.Tensor], rows: tuple[torch.Tensor, torch.Tensor]) -> None:
    assert torch.equal(batched[1], rows[1]) and torch.equal(batched[0], rows[0])


@pytest.mark.parametrize("seconds", [SECONDS, 3 * WINDOW / TINY_FRAME_RATE], ids=["one window", "three windows"])
def test_a_sampled_batch_gives_every_prompt_its_music_alone(model, seconds):
    options = dict(duration=seconds, seed=5, top_k=0)
    batched = model.generate(PROMPTS, return_codes=True, **options)
    assert_same(batched, one_by_one(model.generate, PROMPTS, **options))
    split = [model.generate(PROMPTS[:2], return_codes=True, **options),
             model.generate(PROMPTS[2:], first_row=2, return_codes=True, **options)]
    assert_same(batched, stacked(split))


def test_a_continued_batch_gives_every_clip_its_music_alone(model):
    recording = torch.randn(1, 1, 40, generator=torch.Generator().manual_seed(0)) * 0.1
    options = dict(duration=SECONDS, seed=5, top_k=0)
    batched = model.generate_continuation(recording.expand(3, -1, -1), TINY_SAMPLE_RATE, PROMPTS, return_codes=True,
                                          **options)

    def continue_alone(prompts, **arguments):
        return model.generate_continuation(recording, TINY_SAMPLE_RATE, prompts, **arguments)

    assert_same(batched, one_by_one(continue_alone, PROMPTS, **options))


def test_greedy_ignores_the_seed_and_the_batch(model):
    batched = model.generate(PROMPTS, duration=SECONDS, use_sampling=False, return_codes=True)
    rows = [model.generate([prompt], duration=SECONDS, use_sampling=False, seed=9, first_row=7, return_codes=True)
            for prompt in PROMPTS]
    assert_same(batched, stacked(rows))


def test_rows_seeds_and_repeats(model):
    def codes(prompts, **options):
        return model.generate(prompts, duration=SECONDS, top_k=0, return_codes=True, **options)[1]

    first = codes(["epic", "epic"], seed=3)
    assert torch.equal(first, codes(["epic", "epic"], seed=3))                     # the same seed twice
    assert not torch.equal(first[0], first[1])                                     # rows have their own streams
    assert not torch.equal(first, codes(["epic", "epic"], seed=4))                 # another seed
    assert not torch.equal(codes(["epic"], seed=0, first_row=1), codes(["epic"], seed=1))  # not seed + row


@pytest.mark.parametrize("arguments, message", [
    (dict(seed=-1), "seed must be an integer >= 0"), (dict(seed=1.0), "seed must be an integer >= 0"),
    (dict(seed=0, first_row=-1), "first_row must be an integer >= 0"),
    (dict(seed=0, first_row=True), "first_row must be an integer >= 0"),
    (dict(seed=0, first_row="2"), "first_row must be an integer >= 0"),
    (dict(first_row=2), "first_row=2 places the prompts in a seeded request; give a seed"),
])
def test_bad_seeds_and_rows_are_refused(model, arguments, message):
    with pytest.raises(ValueError, match=message):
        model.generate(["epic"], duration=SECONDS, **arguments)


def test_inverse_cdf_never_picks_a_zero_weight():
    weights = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0]).expand(3, 5)
    uniforms = torch.tensor([0.0, 0.5 - 2**-24, 1 - 2**-24])
    assert inverse_cdf(weights, uniforms).tolist() == [3, 3, 1]


def test_the_files_of_a_prompt_list_do_not_depend_on_the_batch_size(model_dir, tmp_path, capsys):
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    written = {}
    for batch_size in ("1", "3"):
        folder = tmp_path / batch_size
        assert main(["--prompts-file", str(tmp_path / "prompts.txt"), "--batch-size", batch_size, "--duration",
                     str(SECONDS), "--out-dir", str(folder), "--model", str(model_dir), "--seed", "11", "--quiet"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["seed"] for line in lines] == [11, 11, 11]
        written[batch_size] = {Path(line["path"]).name: Path(line["path"]).read_bytes() for line in lines}
    assert len(written["1"]) == 3 and written["1"] == written["3"]
    assert len(set(written["1"].values())) == 3
