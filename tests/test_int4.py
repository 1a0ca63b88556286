"""int4 weights with a scale and zero point per group of inputs: the rounding, the layer (torch's CPU kernel and the
dequantising fallback), the LM against float32 (its greedy tokens: tests/test_speed_paths.py), and
`MusicGen.from_pretrained(quantize="int4")`.

How close int4 can be: a group's weights round to 16 levels a step of scale = (max - min) / 15 apart, so each
weight moves by at most scale / 2 and, rounding errors being uniform, by scale / sqrt(12) in root mean square.
For nn.Linear's uniform initialisation on [-a, a] that is (2a / 15) / sqrt(12) against the weights' a / sqrt(3):
a relative error of 1/15 (6.7%) on the weights, and so on a layer's output. bfloat16 inputs to the kernel add
about 0.3%.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from musicgen import MusicGen, fast_linear
from musicgen.fast_linear import Int4Linear, dequantize_int4, quantize_int4

from test_musicgen_hf import build_hf_musicgen
from test_speed_paths import CARD, K, conditions, tiny_lm


def relative_error(output: torch.Tensor, expected: torch.Tensor) -> float:
    return ((output - expected).norm() / expected.norm()).item()


@pytest.fixture(params=["kernel", "fallback"])
def path(request, monkeypatch):
    """Each test runs with torch's CPU int4 kernel (where this torch has one) and with the dequantising fallback."""
    if request.param == "kernel" and not fast_linear.cpu_int4_kernel_works():
        pytest.skip("this torch has no working CPU int4 kernel")
    if request.param == "fallback":
        monkeypatch.setattr(fast_linear, "cpu_int4_kernel_works", lambda: False)
    return request.param


def test_rounding_moves_each_weight_by_at_most_half_a_step():
    weight = torch.randn(48, 128) + torch.linspace(-2, 2, 48)[:, None]  # rows of different offsets
    codes, scales_and_zeros = quantize_int4(weight, 32)
    assert codes.shape == weight.shape and codes.min() >= 0 and codes.max() <= 15
    assert scales_and_zeros.shape == (4, 48, 2) and scales_and_zeros.dtype == torch.bfloat16
    step = scales_and_zeros[..., 0].float().T.repeat_interleave(32, dim=1)  # [48, 128]: each weight's scale
    # half a step, and the bfloat16 rounding of the zero point (2^-8 of it, at most 2 / 256 here)
    assert ((dequantize_int4(codes, scales_and_zeros, 32) - weight).abs() <= step / 2 + 0.01).all()


@pytest.mark.parametrize("in_features,out_features", [(128, 48), (24, 40)])  # 24 and 40 are padded to 32 and 48
def test_int4_linear_multiplies_by_its_rounded_weights(path, in_features, out_features):
    torch.manual_seed(0)
    linear = torch.nn.Linear(in_features, out_features, bias=False)
    quantized = Int4Linear(linear, group_size=32)
    assert quantized.kernel == (path == "kernel")
    padded = F.pad(linear.weight.detach(), (0, -in_features % 32, 0, -out_features % 16))
    rounded = dequantize_int4(*quantize_int4(padded, 32), 32)[:out_features, :in_features]
    x = torch.randn(3, 5, in_features)
    with torch.no_grad():
        output, expected = quantized(x), linear(x)
    assert output.dtype == x.dtype and output.shape == expected.shape
    assert relative_error(output, x @ rounded.T) < (0.01 if path == "kernel" else 1e-5)  # bfloat16 inputs, or none
    assert relative_error(output, expected) < 0.08  # 1/15 from int4 rounding (module docstring)


def test_int4_linear_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="bias-free"):
        Int4Linear(torch.nn.Linear(64, 16))
    with pytest.raises(ValueError, match="group_size must be one of"):
        Int4Linear(torch.nn.Linear(64, 16, bias=False), group_size=16)


def test_int4_lm_logits_stay_close_to_float32(path):
    lm = tiny_lm()
    sequence = torch.randint(0, CARD + 1, (2, K, 10))
    with torch.no_grad():
        expected = lm(sequence, *conditions(2))
        quantized = copy.deepcopy(lm).quantize_int4(group_size=32)
        logits = quantized(sequence, *conditions(2))
    assert quantized.quantized and not lm.quantized
    assert all(isinstance(getattr(quantized.layers[0].feed_forward, name), Int4Linear) for name in ("up", "down"))
    # Gaussian weights (std 0.02) in groups of 32 span about 4.1 std: a step of 0.27 std rounds each matmul's weights
    # by 0.27 / sqrt(12), 8% (7.5% measured on the logits); 0.12 leaves half of that again
    assert relative_error(logits, expected) < 0.12


def test_int4_model_generates_and_refuses_to_be_saved(tmp_path):
    build_hf_musicgen(tmp_path / "hf", "k4")  # width 48 and ffn 96: inputs padded to whole groups of 64
    model = MusicGen.from_pretrained(tmp_path / "hf", device="cpu", quantize="int4")
    assert isinstance(model.lm.fused_heads, Int4Linear) and model.lm.quantized
    quantized = [module for module in model.lm.modules() if isinstance(module, Int4Linear)]
    storages = {buffer.untyped_storage().data_ptr() for module in quantized for buffer in module.buffers()}
    assert len(storages) == 1  # gathered into one allocation after the load (infra/memory.py)
    wav = model.generate(["epic"], duration=0.005, seed=0)
    assert wav.shape == (1, 1, 40) and torch.isfinite(wav).all()
    with pytest.raises(ValueError, match="int4-quantized LM cannot be saved"):
        model.save_pretrained(tmp_path / "saved")
    for bad in ("int2", "INT4", 4):
        with pytest.raises(ValueError, match="quantize must be None, 'int8' or 'int4'"):
            MusicGen.from_pretrained(tmp_path / "hf", quantize=bad)


def mapped_file(tensor: torch.Tensor) -> Path | None:
    """The file whose memory mapping holds the tensor's first byte (Linux: /proc/self/maps), or None."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, _, _, _, _, *name = line.split(maxsplit=5)
        start, end = (int(bound, 16) for bound in span.split("-"))
        if start <= address < end:
            return Path(name[0]) if name and name[0].startswith("/") else None
    return None


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the process's mappings from Linux's /proc")
@pytest.mark.parametrize("layout", ["hf", "own"])
def test_int4_model_runs_its_text_encoder_in_bfloat16_with_its_embedding_mapped(tmp_path, layout):
    build_hf_musicgen(tmp_path / "hf", "k4")
    if layout == "own":
        MusicGen.from_pretrained(tmp_path / "hf").save_pretrained(tmp_path / "own")
    reference = MusicGen.from_pretrained(tmp_path / layout)
    model = MusicGen.from_pretrained(tmp_path / layout, quantize="int4")
    encoder = model.conditioner.encoder
    embedding_weights = {f"{name}.weight" for name, module in encoder.named_modules() if isinstance(module, nn.Embedding)}
    assert embedding_weights == {"shared.weight", "encoder.embed_tokens.weight",  # one tensor, tied
                                 "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"}
    for name, parameter in encoder.named_parameters():  # the embeddings float32, every other weight bfloat16
        assert parameter.dtype == (torch.float32 if name in embedding_weights else torch.bfloat16), name
    assert {p.dtype for p in reference.conditioner.parameters()} == {torch.float32}
    # the token embedding is read where it lies in the file: a lookup makes only its rows resident
    weights_file = tmp_path / "hf" / "model.safetensors" if layout == "hf" else tmp_path / "own" / "text_encoder" / "model.safetensors"
    assert mapped_file(encoder.shared.weight) == weights_file.resolve()
    assert mapped_file(encoder.encoder.final_layer_norm.weight) is None  # cast: memory of its own
    prompts = ["epic strings", "calm piano at 80 BPM", ""]
    with torch.inference_mode():
        condition, mask = model.conditioner(prompts)
        expected, expected_mask = reference.conditioner(prompts)
    assert condition.dtype == torch.float32 and torch.equal(mask, expected_mask)
    # bfloat16's 8-bit mantissa moves each product by about 0.3%, through a few layers
    assert relative_error(condition[mask], expected[mask]) < 0.02
