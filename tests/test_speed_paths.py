"""The fast generation paths give the tokens of the plain one: packed float32 weights, int8 and int4 weights, a compiled
decode.

Speed itself is measured by benchmarks/bench_generate.py, never asserted here.
"""
from __future__ import annotations

import copy
import json

import pytest
import torch

from musicgen import MusicGen
from musicgen.beat_clock import beat_clock
from musicgen.config import LMConfig, Sampling
from musicgen.cpu_layout import LAYOUTS, layout_cache_path, machine_key
from musicgen.fast_linear import can_pack
from musicgen.generate import generate_codes, row_generators
from musicgen.lm import LM
from musicgen.train.loss import codebook_cross_entropy, inputs_and_targets
from patterns import get_provider

from tiny_models import save_tiny_musicgen

K, CARD, CONDITION_DIM = 4, 32, 16
GREEDY = Sampling(use_sampling=False, cfg_coef=3.0)
needs_onednn = pytest.mark.skipif(not can_pack(torch.empty(0)), reason="torch built without oneDNN")


def tiny_lm(seed: int = 0) -> LM:
    torch.manual_seed(seed)
    config = LMConfig(num_codebooks=K, cardinality=CARD, dim=64, num_heads=4, num_layers=2, ffn_dim=128,
                      condition_dim=CONDITION_DIM, max_positions=64)
    return LM(config).eval()


def conditions(count: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    condition = torch.randn(count, 3, CONDITION_DIM, generator=torch.Generator().manual_seed(seed))
    return condition, torch.ones(count, 3, dtype=torch.bool)


@needs_onednn
def test_packed_lm_gives_the_float_lm_logits_and_tokens_and_unpacks_to_the_same_weights():
    lm = tiny_lm()
    original = {name: tensor.clone() for name, tensor in lm.state_dict().items()}
    sequence = torch.randint(0, CARD + 1, (2, K, 10))
    pattern = get_provider("delay", K).get_pattern(12)
    with torch.no_grad():
        logits = lm(sequence, *conditions(2))
        codes = generate_codes(lm, pattern, *conditions(2), sampling=GREEDY)
        lm.pack_for_cpu()
        assert lm.packed and lm.layers[0].self_attention.query is None
        assert torch.allclose(lm(sequence, *conditions(2)), logits, atol=1e-5)
        assert torch.equal(generate_codes(lm, pattern, *conditions(2), sampling=GREEDY), codes)
    lm.unpack()
    assert not lm.packed and lm.fused_heads is None
    assert list(lm.state_dict()) == list(original)
    assert all(torch.equal(tensor, original[name]) for name, tensor in lm.state_dict().items())
    lm.train()
    loss = lm(sequence, *conditions(2)).square().mean()
    loss.backward()
    assert all(parameter.grad is not None for parameter in lm.heads.parameters())


@needs_onednn
@pytest.mark.parametrize("layout", LAYOUTS)
def test_generation_lays_out_once_and_the_model_still_saves_and_moves_as_loaded(layout, tmp_path, monkeypatch):
    """The first generation lays the LM out as this machine's remembered measurement says (here written beforehand,
    for each layout) and fuses its projections; later ones keep that layout; saving and moving undo it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = MusicGen.from_pretrained(save_tiny_musicgen(tmp_path), device="cpu")
    layout_cache_path().parent.mkdir(parents=True)
    layout_cache_path().write_text(json.dumps({machine_key(model.lm): {"layout": layout}}))
    original = {name: tensor.clone() for name, tensor in model.lm.state_dict().items()}
    _, first = model.generate(["epic"], duration=0.008, seed=0, return_codes=True)
    assert model.lm.packed == (layout == "packed") and model.lm.fused and not model.codec.decoder_has_weight_norm
    assert model.codec.config.norm == "weight_norm"  # the encoder, unused by generation, is left as loaded
    laid_out_weight = model.lm.layers[0].feed_forward.up.weight
    _, second = model.generate(["epic"], duration=0.008, seed=0, return_codes=True)
    assert model.lm.layers[0].feed_forward.up.weight is laid_out_weight  # not laid out again
    assert torch.equal(first, second)
    model.save_pretrained(tmp_path / "saved")
    assert not model.lm.fused and model.codec.config.norm == "none"  # saved folded whole
    reloaded = MusicGen.from_pretrained(tmp_path / "saved", device="cpu")
    assert all(torch.equal(tensor, original[name]) for name, tensor in reloaded.lm.state_dict().items())
    _, third = reloaded.generate(["epic"], duration=0.008, seed=0, return_codes=True)
    assert torch.equal(third, first)
    model.generate(["epic"], duration=0.008, seed=0)
    model.to("cpu")
    assert not model.lm.fused


def train_to_memorise(lm: LM, codes: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor, steps: int) -> float:
    """Teacher-force the delay-pattern sequences of codes [B, K, T] until the LM knows them; the last loss."""
    pattern = get_provider("delay", K).get_pattern(codes.shape[-1])
    inputs, targets = inputs_and_targets(pattern, codes, lm.special_token)
    optimizer = torch.optim.AdamW(lm.parameters(), lr=3e-3, weight_decay=0.0)
    lm.train()
    for _ in range(steps):
        sums, counts = codebook_cross_entropy(lm(inputs, condition, mask), targets, lm.special_token)
        loss = (sums / counts).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    lm.eval()
    return loss.item()


@pytest.mark.parametrize("quantize", [LM.quantize_int8, LM.quantize_int4], ids=["int8", "int4"])
def test_quantized_greedy_tokens_mostly_agree_with_float32_on_a_trained_lm(quantize):
    lm = tiny_lm()
    codes = torch.randint(0, CARD, (6, K, 16), generator=torch.Generator().manual_seed(2))
    condition, mask = conditions(6)
    null_rows = torch.zeros(6, 3, CONDITION_DIM), torch.zeros(6, 3, dtype=torch.bool)  # guidance needs the null too
    assert train_to_memorise(lm, codes.repeat(2, 1, 1), torch.cat([condition, null_rows[0]]),
                             torch.cat([mask, null_rows[1]]), steps=60) < 0.5
    pattern = get_provider("delay", K).get_pattern(16)
    float_codes = generate_codes(lm, pattern, condition, mask, sampling=GREEDY)
    quantized_codes = generate_codes(quantize(copy.deepcopy(lm)), pattern, condition, mask, sampling=GREEDY)
    assert (float_codes == codes).float().mean() > 0.9, "the float model should have learnt its sequences"
    agreement = (quantized_codes == float_codes).float().mean().item()
    assert agreement >= 0.9, f"quantized greedy tokens agree with float32 on {agreement:.0%}"


class GraphCounter:
    """A torch.compile backend that runs the captured graphs as they are and counts them."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return graph_module.forward


@pytest.mark.parametrize("pack", [False, True])
def test_compiled_decode_is_one_graph_for_every_step_and_gives_the_same_tokens(pack):
    torch._dynamo.reset()
    lm = tiny_lm().add_beat_clock()
    torch.nn.init.normal_(lm.beat_clock.projection.weight)
    clock = beat_clock(torch.tensor([0.1, 0.0]))  # the second row has no clock
    pattern = get_provider("delay", K).get_pattern(20)
    condition, mask = conditions(2)
    expected = generate_codes(lm, pattern, condition, mask, sampling=GREEDY, clock=clock)
    sampled = generate_codes(lm, pattern, condition, mask, sampling=Sampling(top_k=5), clock=clock,
                             generators=row_generators(0, range(2), lm.device))
    if pack and can_pack(lm.norm.weight):
        lm.pack_for_cpu()
    counter = GraphCounter()
    lm.compile_decode(mode=None, backend=counter)
    assert torch.equal(generate_codes(lm, pattern, condition, mask, sampling=GREEDY, clock=clock), expected)
    assert counter.graphs == 1  # fullgraph: the whole step is captured, once for all 22 steps
    assert torch.equal(generate_codes(lm, pattern, condition, mask, sampling=Sampling(top_k=5), clock=clock,
                                      generators=row_generators(0, range(2), lm.device)), sampled)
    continued = generate_codes(lm, pattern, condition, mask, sampling=GREEDY, prompt=expected[..., :5], clock=clock)
    assert torch.equal(continued, expected) and counter.graphs == 1  # another prompt length: the same decode graph


def test_a_compiled_lm_reads_the_same_caches_in_every_call_of_one_size():
    """A compiled graph reads the KV caches and the causal mask at fixed addresses: a frozen graph would compile
    again for new ones, a CUDA graph re-record. So a compiled LM keeps them, zeroed, for its next call of the size."""
    torch._dynamo.reset()
    lm = tiny_lm()
    pattern = get_provider("delay", K).get_pattern(20)
    condition, mask = conditions(2)
    generate_codes(lm, pattern, condition, mask, sampling=GREEDY)
    assert lm.kept_caches is None  # uncompiled: the caches go with the call
    lm.compile_decode(mode=None, backend=GraphCounter())

    def addresses() -> list[int]:
        _, caches, causal_mask = lm.kept_caches
        return [causal_mask.data_ptr()] + [cache.keys.data_ptr() for cache in caches]

    first = generate_codes(lm, pattern, condition, mask, sampling=GREEDY)
    kept = addresses()
    with torch.inference_mode():  # what a reused cache held before must not reach the next call
        lm.kept_caches[1][0].keys.fill_(float("nan"))
    assert torch.equal(generate_codes(lm, pattern, condition, mask, sampling=GREEDY), first)
    assert addresses() == kept and lm.causal_mask is None and lm.layers[0].self_attention.kv_cache is None
    generate_codes(lm, pattern, condition[:1], mask[:1], sampling=GREEDY)  # another batch: caches of its own
    assert lm.kept_caches[1][0].keys.shape[0] == 2 and addresses() != kept  # 2 rows: the prompt and its null row


def test_compiling_a_decode_step_with_cpu_int8_weights_is_refused():
    """torch.compile cannot trace fbgemm's packed int8 weights: a clear error at compile_decode, not a dynamo trace."""
    lm = tiny_lm().quantize_int8()
    if torch.backends.quantized.engine == "none":
        pytest.skip("no CPU quantization engine: int8 runs dequantised, which compiles")
    with pytest.raises(ValueError, match="int8 weights on the CPU cannot be compiled"):
        lm.compile_decode()
    assert lm.compiled_decode is None
