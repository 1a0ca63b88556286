"""The LM: cached decoding equals the full forward, causality, condition masking, config checks."""
from __future__ import annotations

import pytest
import torch
from transformers.models.musicgen.modeling_musicgen import (
    MusicgenSinusoidalPositionalEmbedding,
)

from musicgen.config import LMConfig
from musicgen.fast_linear import Int8Linear
from musicgen.lm import LM
from musicgen.positions import rotary_angles, rotate, sinusoidal_positions

CONFIG = dict(num_codebooks=3, cardinality=16, dim=32, num_heads=4, num_layers=2, ffn_dim=64, condition_dim=24,
              max_positions=64)


def tiny_lm(**overrides) -> LM:
    torch.manual_seed(0)
    return LM(LMConfig(**{**CONFIG, **overrides})).eval()


def condition_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows: a full condition of 5 positions and one padded after 2."""
    condition = torch.randn(2, 5, CONFIG["condition_dim"])
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    return condition, mask


def test_forward_shapes():
    lm = tiny_lm()
    sequence = torch.randint(0, 17, (2, 3, 7))
    logits = lm(sequence, *condition_batch())
    assert logits.shape == (2, 3, 7, 16)


@pytest.mark.parametrize("position_encoding", ["sinusoidal", "rope"])
@pytest.mark.parametrize("read_written_part_only", [False, True])
def test_cached_decode_matches_full_forward(read_written_part_only, position_encoding):
    lm = tiny_lm(position_encoding=position_encoding)
    sequence = torch.randint(0, 17, (2, 3, 12))
    condition, mask = condition_batch()
    with torch.no_grad():
        expected = lm(sequence, condition, mask)
        lm.setup_caches(batch=2, max_steps=12)
        memory = lm.memory(condition, mask)
        steps = [lm.decode(sequence[..., :5], torch.arange(5), memory, 5 if read_written_part_only else None)]
        for step in range(5, 12):
            length = step + 1 if read_written_part_only else None
            steps.append(lm.decode(sequence[..., step:step + 1], torch.tensor([step]), memory, length))
        lm.clear_caches()
    assert torch.allclose(torch.stack(steps, dim=2), expected[:, :, 4:], atol=1e-5)


def test_future_tokens_do_not_change_past_logits():
    lm = tiny_lm()
    sequence = torch.randint(0, 17, (2, 3, 10))
    changed = sequence.clone()
    changed[..., 6:] = (changed[..., 6:] + 1) % 17
    condition, mask = condition_batch()
    with torch.no_grad():
        before, after = lm(sequence, condition, mask), lm(changed, condition, mask)
    assert torch.allclose(before[:, :, :6], after[:, :, :6], atol=1e-6)
    assert not torch.allclose(before[:, :, 6:], after[:, :, 6:])


def test_padded_condition_positions_are_ignored():
    lm = tiny_lm()
    sequence = torch.randint(0, 17, (2, 3, 6))
    condition, mask = condition_batch()
    other = condition.clone()
    other[1, 2:] = torch.randn(3, CONFIG["condition_dim"])
    with torch.no_grad():
        assert torch.allclose(lm(sequence, condition, mask), lm(sequence, other, mask), atol=1e-6)
        other[1, :2] += 1.0
        assert not torch.allclose(lm(sequence, condition, mask)[1], lm(sequence, other, mask)[1])


def test_null_condition_ignores_condition_values():
    lm = tiny_lm()
    sequence = torch.randint(0, 17, (2, 3, 6))
    condition, _ = condition_batch()
    nothing = torch.zeros(2, 5, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(lm(sequence, condition, nothing), lm(sequence, torch.zeros_like(condition), nothing))


def test_gradients_reach_every_trainable_weight():
    lm = tiny_lm().train()
    logits = lm(torch.randint(0, 17, (2, 3, 6)), *condition_batch())
    logits.logsumexp(-1).mean().backward()
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in lm.parameters())


def test_sinusoidal_positions_are_cosines_then_sines():
    table = sinusoidal_positions(torch.arange(5), 8)
    assert table.shape == (5, 8)
    assert torch.equal(table[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert torch.allclose(table[3, 0], torch.cos(torch.tensor(3.0))) and torch.allclose(table[3, 4], torch.sin(torch.tensor(3.0)))


def test_sinusoidal_positions_equal_the_transformers_table_at_any_position():
    for dim in (24, 64, 1024):
        table = MusicgenSinusoidalPositionalEmbedding(2048, dim).weights
        assert torch.equal(sinusoidal_positions(torch.arange(2048), dim), table)
        assert all(torch.equal(sinusoidal_positions(torch.tensor([position]), dim)[0], table[position])
                   for position in (0, 1, 511, 2047))


def test_rotary_attention_scores_depend_only_on_the_offset():
    query, key = torch.randn(2, 1, 1, 1, 8).unbind(0)
    def score(query_position: int, key_position: int) -> float:
        return float((rotate(query, rotary_angles(torch.tensor([query_position]), 8, torch.float32))
                      * rotate(key, rotary_angles(torch.tensor([key_position]), 8, torch.float32))).sum())
    assert score(7, 3) == pytest.approx(score(107, 103), abs=1e-4)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-2)
    assert torch.equal(rotate(query, rotary_angles(torch.tensor([0]), 8, torch.float32)), query)


def test_rope_lm_adds_no_positions_to_its_input():
    lm = tiny_lm(position_encoding="rope")
    sequence = torch.randint(0, 17, (1, 3, 6))
    condition, mask = (t[:1] for t in condition_batch())
    with torch.no_grad():  # a sequence of one repeated step: without positions, only causality tells steps apart
        logits = lm(sequence[..., :1].expand(-1, -1, 6), condition, mask)
        sinusoidal = tiny_lm()(sequence[..., :1].expand(-1, -1, 6), condition, mask)
    assert torch.allclose(logits[:, :, 0], logits[:, :, 5], atol=1e-5)
    assert not torch.allclose(sinusoidal[:, :, 0], sinusoidal[:, :, 5], atol=1e-3)


def test_sequence_longer_than_positions_is_refused():
    lm = tiny_lm(max_positions=8)
    with pytest.raises(ValueError, match="8 positions"):
        lm(torch.randint(0, 17, (1, 3, 9)), *[t[:1] for t in condition_batch()])
    with pytest.raises(ValueError, match=r"max_steps must be in \[1, 8\]"):
        lm.setup_caches(batch=1, max_steps=9)


@pytest.mark.parametrize("overrides, message", [
    (dict(dim=30), "divisible"),
    (dict(activation="swish"), "activation"),
    (dict(num_layers=0), "num_layers"),
    (dict(attention_backend="flash"), "attention_backend"),
    (dict(dropout=1.0), "dropout"),
    (dict(position_encoding="alibi"), "position_encoding must be one of"),
    (dict(dim=36, num_heads=4, position_encoding="rope"), "even head dimension, got 9"),
])
def test_bad_config_is_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        LMConfig(**{**CONFIG, **overrides})


def test_condition_of_wrong_width_is_refused():
    lm = tiny_lm()
    with pytest.raises(ValueError, match=r"condition must be \[B, L, 24\]"):
        lm(torch.randint(0, 17, (1, 3, 4)), torch.randn(1, 5, 23), torch.ones(1, 5, dtype=torch.bool))


@pytest.mark.parametrize("in_features", [32, 24])
def test_int8_linear_is_close_to_its_float_layer(in_features):
    torch.manual_seed(0)
    linear = torch.nn.Linear(in_features, 40, bias=False)
    quantized = Int8Linear(linear)
    x = torch.randn(3, 5, in_features)
    with torch.no_grad():
        expected, output = linear(x), quantized(x)
    assert output.dtype == x.dtype and output.shape == expected.shape
    assert (output - expected).norm() / expected.norm() < 0.02


def test_int8_lm_stays_close_to_float():
    lm = tiny_lm()
    sequence = torch.randint(0, 17, (2, 3, 8))
    with torch.no_grad():
        expected = lm(sequence, *condition_batch()).log_softmax(-1)
        quantized = lm.quantize_int8()
        logits = quantized(sequence, *condition_batch()).log_softmax(-1)
    assert quantized.quantized and not tiny_lm().quantized
    divergence = torch.nn.functional.kl_div(logits, expected, log_target=True, reduction="none").sum(-1)
    assert divergence.mean() < 1e-3
