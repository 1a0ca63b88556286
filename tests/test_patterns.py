"""Codebook patterns: golden layouts, properties over K and T, and bad input."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns import PATTERN_NAMES, get_provider

SPECIAL = -1

# K = 4 codebooks, T = 3 frames; codes[k, t] = 10 * k + t; "." is the special token.
# Written by hand from the placement rules of the issue (and audiocraft's providers).
GOLDEN = {
    "parallel": [
        ". 0 1 2",
        ". 10 11 12",
        ". 20 21 22",
        ". 30 31 32",
    ],
    "delay": [
        ". 0 1 2 . . .",
        ". . 10 11 12 . .",
        ". . . 20 21 22 .",
        ". . . . 30 31 32",
    ],
    "flatten": [
        ". 0 . . . 1 . . . 2 . . .",
        ". . 10 . . . 11 . . . 12 . .",
        ". . . 20 . . . 21 . . . 22 .",
        ". . . . 30 . . . 31 . . . 32",
    ],
    "valley": [
        ". 0 1 2 . . .",
        ". . . . 10 11 12",
        ". . . . 20 21 22",
        ". . . . 30 31 32",
    ],
    "partial_flatten": [
        ". 0 . 1 . 2 .",
        ". . 10 . 11 . 12",
        ". . 20 . 21 . 22",
        ". . 30 . 31 . 32",
    ],
}

PARTIAL_DELAY_GOLDEN = [
    ". 0 1 2 .",
    ". . 10 11 12",
    ". . 20 21 22",
    ". . 30 31 32",
]


def parse(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[SPECIAL if cell == "." else int(cell) for cell in row.split()] for row in rows])


def golden_codes(num_codebooks: int = 4, timesteps: int = 3) -> torch.Tensor:
    return (10 * torch.arange(num_codebooks)[:, None] + torch.arange(timesteps)[None, :])[None]


@pytest.mark.parametrize("name", PATTERN_NAMES)
def test_golden_sequences(name):
    pattern = get_provider(name, num_codebooks=4).get_pattern(3)
    sequence, mask = pattern.build_sequence(golden_codes(), SPECIAL)
    expected = parse(GOLDEN[name])
    assert torch.equal(sequence[0], expected)
    assert torch.equal(mask, expected != SPECIAL)


def test_partial_delay_golden():
    pattern = get_provider("delay", num_codebooks=4, delays=[0, 1, 1, 1]).get_pattern(3)
    sequence, _ = pattern.build_sequence(golden_codes(), SPECIAL)
    assert torch.equal(sequence[0], parse(PARTIAL_DELAY_GOLDEN))


def expected_steps(name: str, num_codebooks: int, timesteps: int) -> int:
    return {
        "parallel": timesteps,
        "delay": timesteps + num_codebooks - 1,
        "flatten": num_codebooks * timesteps,
        "valley": 2 * timesteps if num_codebooks > 1 else timesteps,
        "partial_flatten": 2 * timesteps if num_codebooks > 1 else timesteps,
    }[name]


def expected_step(name: str, num_codebooks: int, timesteps: int, t: int, k: int) -> int:
    """Placement rules of the issue, steps counted from 1."""
    if name == "parallel":
        return t + 1
    if name == "delay":
        return t + 1 + k
    if name == "flatten":
        return t * num_codebooks + k + 1
    if name == "valley":
        return t + 1 if k == 0 else timesteps + t + 1
    if name == "partial_flatten":
        if num_codebooks == 1:
            return t + 1
        return 2 * t + 1 if k == 0 else 2 * t + 2
    raise AssertionError(name)


sizes = st.tuples(st.sampled_from(PATTERN_NAMES), st.integers(1, 8), st.integers(1, 64))


@settings(max_examples=60, deadline=None)
@given(sizes)
def test_layout_properties(case):
    name, num_codebooks, timesteps = case
    pattern = get_provider(name, num_codebooks=num_codebooks).get_pattern(timesteps)
    assert pattern.layout[0] == []
    assert pattern.num_steps == expected_steps(name, num_codebooks, timesteps)
    seen = {}
    for step, coordinates in enumerate(pattern.layout):
        for t, k in coordinates:
            assert (t, k) not in seen
            seen[(t, k)] = step
    assert set(seen) == {(t, k) for t in range(timesteps) for k in range(num_codebooks)}
    for (t, k), step in seen.items():
        assert step == expected_step(name, num_codebooks, timesteps, t, k)
        if t > 0:
            assert seen[(t - 1, k)] < step


@settings(max_examples=60, deadline=None)
@given(sizes, st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_revert_inverts_build(case, batch, seed):
    name, num_codebooks, timesteps = case
    card = 7
    pattern = get_provider(name, num_codebooks=num_codebooks).get_pattern(timesteps)
    codes = torch.randint(0, card, (batch, num_codebooks, timesteps), generator=torch.Generator().manual_seed(seed))
    sequence, mask = pattern.build_sequence(codes, card)
    assert sequence.shape == (batch, num_codebooks, pattern.num_steps + 1)
    assert torch.equal(sequence == card, ~mask.expand_as(sequence))
    reverted, reverted_mask = pattern.revert_sequence(sequence, card)
    assert torch.equal(reverted, codes)
    assert reverted_mask.all()


@settings(max_examples=60, deadline=None)
@given(sizes)
def test_revert_logits_aligns_with_tokens(case):
    """A model that outputs, at step s, the one-hot of the token at step s + 1 is reverted to the codes."""
    name, num_codebooks, timesteps = case
    card = 5
    pattern = get_provider(name, num_codebooks=num_codebooks).get_pattern(timesteps)
    codes = torch.randint(0, card, (2, num_codebooks, timesteps))
    sequence, _ = pattern.build_sequence(codes, card)
    next_tokens = sequence[:, :, 1:]
    logits = torch.nn.functional.one_hot(next_tokens, card + 1)[..., :card].float()
    reverted, mask = pattern.revert_logits(logits)
    assert reverted.shape == (2, num_codebooks, timesteps, card)
    assert mask.all()
    assert torch.equal(reverted.argmax(-1), codes)
    assert torch.equal(reverted.sum(-1), torch.ones(2, num_codebooks, timesteps))


def test_partial_sequence_reverts_with_mask():
    pattern = get_provider("delay", num_codebooks=4).get_pattern(3)
    sequence, _ = pattern.build_sequence(golden_codes(), SPECIAL)
    codes, mask = pattern.revert_sequence(sequence[..., :3], SPECIAL)
    assert mask.tolist() == [[True, True, False], [True, False, False], [False] * 3, [False] * 3]
    assert codes[0, 0].tolist() == [0, 1, SPECIAL]
    logits, mask = pattern.revert_logits(torch.zeros(1, 4, 2, 8))
    assert mask.tolist() == [[True, True, False], [True, False, False], [False] * 3, [False] * 3]
    assert torch.isnan(logits[0, 0, 2]).all() and not torch.isnan(logits[0, 0, 1]).any()


@pytest.mark.parametrize(
    "name, t, step",
    [("parallel", 2, 3), ("delay", 2, 3), ("flatten", 2, 9), ("valley", 2, 3), ("partial_flatten", 1, 3)],
)
def test_first_step_with_timestep(name, t, step):
    assert get_provider(name, num_codebooks=4).get_pattern(3).first_step_with_timestep(t) == step


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="parallel, delay, flatten, valley, partial_flatten"):
        get_provider("zigzag", num_codebooks=4)


@pytest.mark.parametrize("name", PATTERN_NAMES)
@pytest.mark.parametrize("num_codebooks", [0, -1, 2.5])
def test_bad_n_q(name, num_codebooks):
    with pytest.raises(ValueError, match="num_codebooks"):
        get_provider(name, num_codebooks=num_codebooks)


@pytest.mark.parametrize("delays", [[0, 1], [0, -1, 1, 2]])
def test_bad_delays(delays):
    with pytest.raises(ValueError, match="delays"):
        get_provider("delay", num_codebooks=4, delays=delays)


@pytest.mark.parametrize("timesteps", [0, -3])
def test_bad_timesteps(timesteps):
    with pytest.raises(ValueError, match="timesteps"):
        get_provider("delay", num_codebooks=4).get_pattern(timesteps)


def test_codes_with_wrong_k_or_t():
    pattern = get_provider("delay", num_codebooks=4).get_pattern(3)
    with pytest.raises(ValueError, match="K=4"):
        pattern.build_sequence(torch.zeros(1, 3, 3, dtype=torch.long), SPECIAL)
    with pytest.raises(ValueError, match="T=3"):
        pattern.build_sequence(torch.zeros(1, 4, 5, dtype=torch.long), SPECIAL)
    with pytest.raises(ValueError, match="steps"):
        pattern.revert_sequence(torch.zeros(1, 4, 99, dtype=torch.long), SPECIAL)
    with pytest.raises(ValueError, match=r"timestep must be in \[0, 3\)"):
        pattern.first_step_with_timestep(3)
