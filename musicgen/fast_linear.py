"""Linear layers for memory-bound CPU decoding, swapped in by `LM.pack_for_cpu` and `LM.quantize_int8`.

A decode step multiplies a few rows by every weight, so its speed is the speed of reading the weights:
`PackedLinear` keeps float32 weights in oneDNN's blocked layout, `Int8Linear` reads a quarter of the bytes.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

PACKED_ROWS = 2  # the rows oneDNN lays weights out for: a decode step with guidance (1 to 8 rows run as fast)


class PackedLinear(nn.Module):
    """A bias-free float32 Linear whose weight oneDNN has laid out for its own CPU matmul (generation only).

    A decode step multiplies a few rows by every weight, so it is bound by streaming the weights from
    memory. nn.Linear's CPU matmul streams them at about a third of the memory bandwidth for so few
    rows; oneDNN's kernel on its blocked layout comes close to the bandwidth. The arithmetic is the
    same float32, summed in another order. `weight` is a oneDNN tensor (`weight.to_dense()` is the
    original); it neither trains nor moves to another device: `unpack` first.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        if linear.bias is not None or linear.weight.dtype != torch.float32 or not linear.weight.is_cpu:
            raise ValueError("PackedLinear packs bias-free float32 Linear layers on the CPU only")
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), PACKED_ROWS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, None, "none", [], "")

    def unpack(self) -> nn.Linear:
        weight = self.weight.to_dense()
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
        linear.weight = nn.Parameter(weight)
        return linear


def can_pack(weight: torch.Tensor) -> bool:
    """Whether PackedLinear can hold this weight: float32 on the CPU, with a oneDNN build of torch."""
    return weight.is_cpu and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available()


class Int8Linear(nn.Module):
    """A bias-free Linear holding int8 weights and one scale per output row.

    Decoding reads every weight once per step, so on the CPU it is bound by memory traffic: int8
    weights move a quarter of float32's bytes. On the CPU the product is torch's dynamic quantization
    kernel (fbgemm on x86, qnnpack on ARM), which also rounds each call's input to 8 bits (7 on x86,
    as torch's dynamic quantization does, so that no CPU's int16 pair sums overflow); elsewhere a
    dequantised matmul. The result comes back in the input's dtype.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        if linear.bias is not None:
            raise ValueError("Int8Linear quantizes bias-free Linear layers only")
        weight = linear.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        int8 = torch.round(weight / scales[:, None]).to(torch.int8)
        self.packed = _prepack_int8(int8, scales) if weight.is_cpu else None
        if self.packed is None:
            self.register_buffer("weight", int8)
            self.register_buffer("scales", scales.to(weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            reduce_range = torch.backends.quantized.engine != "qnnpack"
            return torch.ops.quantized.linear_dynamic(x.float(), self.packed, reduce_range).to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype)) * self.scales.to(x.dtype)


def _prepack_int8(int8: torch.Tensor, scales: torch.Tensor):
    """The CPU quantization engine's packed weight for `quantized.linear_dynamic`, or None without one."""
    if torch.backends.quantized.engine == "none":
        return None
    zero_points = torch.zeros(int8.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # quantized tensors are deprecated as a type; the packed weight is what runs
        warnings.simplefilter("ignore")
        weight = torch._make_per_channel_quantized_tensor(int8, scales.double(), zero_points, 0)
        return torch.ops.quantized.linear_prepack(weight, None)
