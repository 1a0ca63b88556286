"""Generation: the cached loop against a plain re-run-everything reference on all five patterns, prompts, sampling."""
from __future__ import annotations

import pytest
import torch

from musicgen.config import LMConfig, Sampling
from musicgen.generate import generate_codes, row_generators, sample_tokens
from musicgen.lm import LM
from patterns import PATTERN_NAMES, get_provider

K, CARD = 3, 16


def tiny_lm() -> LM:
    torch.manual_seed(0)
    config = LMConfig(num_codebooks=K, cardinality=CARD, dim=32, num_heads=4, num_layers=2, ffn_dim=64,
                      condition_dim=24,
                      max_positions=64)
    return LM(config).eval()


def condition_batch() -> tuple[torch.Tensor, torch.Tensor]:
    condition = torch.randn(2, 5, 24, generator=torch.Generator().manual_seed(1))
    return condition, torch.tensor([[True] * 5, [True, True, False, False, False]])


@torch.no_grad()
def reference_greedy(lm: LM, pattern, condition, mask, cfg_coef: float) -> torch.Tensor:
    """Greedy CFG decoding without a cache: rerun the whole prefix each step, fill the layout's slots one step at a time."""
    batch = condition.shape[0]
    sequence = torch.full((batch, K, len(pattern.layout)), CARD)
    null, null_mask = torch.zeros_like(condition), torch.zeros_like(mask)
    for step in range(1, len(pattern.layout)):
        cond = lm(sequence[..., :step], condition, mask)[:, :, -1]
        uncond = lm(sequence[..., :step], null, null_mask)[:, :, -1]
        tokens = (uncond + (cond - uncond) * cfg_coef).argmax(-1)
        for _, k in pattern.layout[step]:
            sequence[:, k, step] = tokens[:, k]
    codes = torch.empty(batch, K, pattern.timesteps, dtype=torch.long)
    for step, coordinates in enumerate(pattern.layout):
        for t, k in coordinates:
            codes[:, k, t] = sequence[:, k, step]
    return codes


@pytest.mark.parametrize("name", PATTERN_NAMES)
def test_cached_generation_equals_uncached_reference(name):
    lm, (condition, mask) = tiny_lm(), condition_batch()
    pattern = get_provider(name, K).get_pattern(5)
    codes = generate_codes(lm, pattern, condition, mask, sampling=Sampling(use_sampling=False, cfg_coef=3.0))
    assert codes.shape == (2, K, 5) and codes.dtype == torch.long
    assert torch.equal(codes, reference_greedy(lm, pattern, condition, mask, 3.0))


@pytest.mark.parametrize("name", PATTERN_NAMES)
def test_continuation_of_a_greedy_prefix_reproduces_the_generation(name):
    lm, (condition, mask) = tiny_lm(), condition_batch()
    pattern = get_provider(name, K).get_pattern(6)
    greedy = Sampling(use_sampling=False, cfg_coef=2.0)
    full = generate_codes(lm, pattern, condition, mask, sampling=greedy)
    continued = generate_codes(lm, pattern, condition, mask, sampling=greedy, prompt=full[..., :2])
    assert torch.equal(continued, full)


def test_continuation_keeps_the_prompt_frames():
    lm, (condition, mask) = tiny_lm(), condition_batch()
    prompt = torch.randint(0, CARD, (2, K, 3))
    codes = generate_codes(lm, get_provider("delay", K).get_pattern(7), condition, mask, sampling=Sampling(top_k=4),
                           prompt=prompt, generators=row_generators(0, range(2), torch.device("cpu")))
    assert torch.equal(codes[..., :3], prompt)
    assert codes.min() >= 0 and codes.max() < CARD


def test_same_seed_same_tokens_other_seed_other_tokens():
    lm, (condition, mask) = tiny_lm(), condition_batch()
    pattern = get_provider("delay", K).get_pattern(8)

    def run(seed: int) -> torch.Tensor:
        return generate_codes(lm, pattern, condition, mask, sampling=Sampling(top_k=0, temperature=2.0),
                              generators=row_generators(seed, range(2), torch.device("cpu")))

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_unguided_generation_runs_one_batch():
    lm, (condition, mask) = tiny_lm(), condition_batch()
    pattern = get_provider("parallel", K).get_pattern(4)
    codes = generate_codes(lm, pattern, condition, mask, sampling=Sampling(use_sampling=False, cfg_coef=1.0))
    assert torch.equal(codes, reference_greedy(lm, pattern, condition, mask, 1.0))


def test_progress_reports_every_step():
    lm, (condition, mask) = tiny_lm(), condition_batch()
    calls = []
    generate_codes(lm, get_provider("delay", K).get_pattern(4), condition, mask, sampling=Sampling(use_sampling=False),
                   progress=lambda done, total: calls.append((done, total)))
    assert calls == [(step, 6) for step in range(1, 7)]


def test_prompt_as_long_as_the_output_is_refused():
    lm, (condition, mask) = tiny_lm(), condition_batch()
    with pytest.raises(ValueError, match="0 < T_p < 4"):
        generate_codes(lm, get_provider("delay", K).get_pattern(4), condition, mask, sampling=Sampling(),
                       prompt=torch.zeros(2, K, 4, dtype=torch.long))


LOGITS = torch.log(torch.tensor([[[0.5, 0.3, 0.15, 0.05]]]))


def uniforms(*shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("sampling", [Sampling(use_sampling=False), Sampling(top_k=1), Sampling(top_p=0.01),
                                      Sampling(temperature=0.0)])
def test_degenerate_sampling_is_greedy(sampling):
    tokens = sample_tokens(LOGITS.expand(4, 2, 4), sampling, uniforms(4, 2))
    assert torch.equal(tokens, torch.zeros(4, 2, dtype=torch.long))


@pytest.mark.parametrize("sampling, allowed", [(Sampling(top_k=2), {0, 1}), (Sampling(top_k=0, top_p=0.7), {0, 1}),
                                               (Sampling(top_k=3, top_p=0.9), {0, 1, 2}),
                                               (Sampling(top_k=0), {0, 1, 2, 3})])
def test_filters_keep_the_right_candidates(sampling, allowed):
    tokens = sample_tokens(LOGITS.expand(2000, 1, 4), sampling, uniforms(2000, 1))
    assert set(tokens.unique().tolist()) == allowed


def test_sampling_follows_the_distribution():
    tokens = sample_tokens(LOGITS.expand(20000, 1, 4), Sampling(top_k=0), uniforms(20000, 1))
    frequencies = torch.bincount(tokens.flatten(), minlength=4).float() / tokens.numel()
    assert torch.allclose(frequencies, LOGITS.exp().flatten(), atol=0.01)


@pytest.mark.parametrize("arguments, message", [
    (dict(top_k=-1), "top_k"), (dict(top_k=2.5), "top_k"), (dict(top_p=1.5), "top_p"), (dict(top_p=-0.1), "top_p"),
    (dict(temperature=-1.0), "temperature"), (dict(temperature=float("inf")), "temperature"),
    (dict(cfg_coef=float("nan")), "cfg_coef"), (dict(cfg_coef="3"), "cfg_coef"),
])
def test_bad_sampling_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        Sampling(**arguments)
