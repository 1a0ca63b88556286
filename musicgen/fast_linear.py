"""Linear layers for memory-bound CPU decoding, swapped in by `LM.pack_for_cpu`, `LM.quantize_int8` and `LM.quantize_int4`.

A decode step multiplies a few rows by every weight, so its speed is the speed of reading the weights:
`PackedLinear` keeps float32 weights in oneDNN's blocked layout, `Int8Linear` reads a quarter of the bytes,
`Int4Linear` about a seventh (4 bits a weight, and a scale and zero point per group of inputs). Each swaps in after
`concatenated_linears` has made one matmul of those a step makes side by side (`LM.fuse_projections`).
"""
from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

PACKED_ROWS = 2  # the rows oneDNN lays weights out for: a decode step with guidance (1 to 8 rows run as fast)
INT4_GROUP_SIZE = 64  # inputs per int4 scale and zero point (docs/benchmarks.md: speed and error of 32, 64, 128)
INT4_GROUP_SIZES = (32, 64, 128, 256)  # those torch's CPU int4 kernel takes
INT4_ROW_BLOCK = 16  # torch's CPU int4 kernel takes out_features in multiples of this


def concatenated_linears(linears: list[nn.Linear]) -> nn.Linear:
    """One bias-free Linear whose outputs are those of `linears`, in order."""
    weight = torch.cat([linear.weight.detach() for linear in linears])
    fused = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    fused.weight = nn.Parameter(weight)
    return fused


def split_linear(linear: nn.Linear, parts: int) -> list[nn.Linear]:
    """Undo `concatenated_linears`: `parts` Linears of equal output size."""
    pieces = []
    for weight in linear.weight.detach().chunk(parts):
        piece = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
        piece.weight = nn.Parameter(weight.clone())
        pieces.append(piece)
    return pieces


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
        self.out_features, self.in_features = linear.weight.shape
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
        int8, scales = quantize_int8_rows(linear.weight)
        self.packed = _prepack_int8(int8, scales) if linear.weight.is_cpu else None
        if self.packed is None:
            self.register_buffer("weight", int8)
            self.register_buffer("scales", scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            reduce_range = torch.backends.quantized.engine != "qnnpack"
            return torch.ops.quantized.linear_dynamic(x.float(), self.packed, reduce_range).to(x.dtype)
        return _dequantised_int8_product(x, self.weight, self.scales)


def quantize_int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [N, K] -> int8 [N, K] and scales [N] float32 (each row's largest magnitude / 127), so that weight ~
    int8 * scales[:, None], each weight moved by at most half its row's step."""
    weight = weight.detach().float()
    scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
    return torch.round(weight / scales[:, None]).to(torch.int8), scales


def _dequantised_int8_product(x: torch.Tensor, int8: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """x [..., K] times the rows int8 [N, K] * scales [N], in x's dtype: [..., N]."""
    return F.linear(x, int8.to(x.dtype)) * scales.to(x.dtype)


def _prepack_int8(int8: torch.Tensor, scales: torch.Tensor):
    """The CPU quantization engine's packed weight for `quantized.linear_dynamic`, or None without one."""
    if torch.backends.quantized.engine == "none":
        return None
    zero_points = torch.zeros(int8.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # quantized tensors are deprecated as a type; the packed weight is what runs
        warnings.simplefilter("ignore")
        weight = torch._make_per_channel_quantized_tensor(int8, scales.double(), zero_points, 0)
        return torch.ops.quantized.linear_prepack(weight, None)


class Int4Linear(nn.Module):
    """A bias-free Linear holding 4-bit weights, with a scale and a zero point per group of `group_size` inputs.

    Each row's inputs fall in groups; a group's weights w in [lo, hi] become codes q in 0..15 with
    w ~ (q - 8) * scale + zero, scale = (hi - lo) / 15 and zero = lo + 8 * scale (bfloat16): torch's int4 layout,
    rounding each weight by at most scale / 2. On the CPU the product is torch's int4 kernel
    (`_weight_int4pack_mm_for_cpu`) in bfloat16, its one type vectorised on x86 as well as ARM: float32 inputs are
    rounded to bfloat16, and the result comes back in the input's dtype. Elsewhere (CUDA), or where that kernel is
    missing or wrong (`cpu_int4_kernel_works`, checked once), every call dequantises the weights and runs
    F.linear: the same weights, correct but slower than float32 (`kernel=False` asks for that path, as
    benchmarks/bench_quality.py does to tell the weights' rounding from the kernel's). in_features and out_features
    are zero-padded to multiples of group_size and INT4_ROW_BLOCK. Generation only: it neither trains, saves nor moves.
    """

    def __init__(self, linear: nn.Linear, group_size: int = INT4_GROUP_SIZE, kernel: bool = True) -> None:
        super().__init__()
        if linear.bias is not None:
            raise ValueError("Int4Linear quantizes bias-free Linear layers only")
        if group_size not in INT4_GROUP_SIZES:
            raise ValueError(f"group_size must be one of {INT4_GROUP_SIZES}, got {group_size!r}")
        weight = linear.weight.detach().float()
        self.out_features, self.in_features = weight.shape
        self.group_size = group_size
        padding = (0, -self.in_features % group_size, 0, -self.out_features % INT4_ROW_BLOCK)
        codes, scales_and_zeros = quantize_int4(F.pad(weight, padding), group_size)
        self.kernel = kernel and weight.is_cpu and cpu_int4_kernel_works()
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1) if self.kernel else _nibbles(codes)
        self.register_buffer("codes", packed)
        self.register_buffer("scales_and_zeros", scales_and_zeros)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., in_features] -> [..., out_features], in x's dtype."""
        rows = x.reshape(-1, self.in_features)
        rows = F.pad(rows, (0, -self.in_features % self.group_size)) if self.in_features % self.group_size else rows
        if self.kernel:
            out = torch.ops.aten._weight_int4pack_mm_for_cpu(rows.to(torch.bfloat16).contiguous(), self.codes,
                                                              self.group_size, self.scales_and_zeros)
        else:
            out = F.linear(rows, self._dequantized(x.dtype))
        return out[:, :self.out_features].to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def _dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        """[out_features, in_features] (both padded) in dtype, for the product without the kernel."""
        return dequantize_int4(_from_nibbles(self.codes), self.scales_and_zeros, self.group_size).to(dtype)


def quantize_int4(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [N, K] float (K a multiple of group_size) -> codes [N, K] int32 in 0..15 and scales_and_zeros
    [K / group_size, N, 2] bfloat16 (scale, zero), the layout of torch's int4 kernels (see Int4Linear)."""
    groups = weight.unflatten(1, (-1, group_size))
    low, high = groups.amin(-1), groups.amax(-1)
    scales = ((high - low) / 15).clamp(min=1e-12).to(torch.bfloat16)
    zeros = (low + 8 * scales.float()).to(torch.bfloat16)
    codes = (groups - zeros.float()[..., None]) / scales.float()[..., None] + 8  # with the rounded scale and zero
    codes = codes.round().clamp(0, 15).to(torch.int32).flatten(1)
    return codes, torch.stack([scales, zeros], dim=-1).transpose(0, 1).contiguous()


def dequantize_int4(codes: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int) -> torch.Tensor:
    """Undo `quantize_int4` up to its rounding: codes [N, K], scales_and_zeros [K / group_size, N, 2] -> [N, K] float32."""
    scales, zeros = scales_and_zeros.float().permute(2, 1, 0)
    groups = codes.float().unflatten(1, (-1, group_size)) - 8
    return (groups * scales[..., None] + zeros[..., None]).flatten(1)


@functools.cache
def cpu_int4_kernel_works() -> bool:
    """Whether this torch has a CPU int4 kernel that computes what `dequantize_int4` says: one small product, once."""
    codes = (torch.arange(INT4_ROW_BLOCK)[:, None] + torch.arange(64)) % 16  # [16, 64]: two groups of 32 a row
    scales = torch.linspace(0.1, 1.0, 2 * INT4_ROW_BLOCK).reshape(2, INT4_ROW_BLOCK)  # one per group and row
    scales_and_zeros = torch.stack([scales, scales - 0.5], dim=-1).to(torch.bfloat16)
    x = torch.linspace(-1, 1, 128).reshape(2, 64)
    try:
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32), 1)
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), packed, 32, scales_and_zeros)
    except (AttributeError, NotImplementedError, RuntimeError):  # an older torch, or a build without the kernel
        return False
    return torch.allclose(out.float(), x @ dequantize_int4(codes, scales_and_zeros, 32).T, rtol=0.02, atol=0.1)


def _nibbles(codes: torch.Tensor) -> torch.Tensor:
    """codes [N, K] in 0..15 (K even) -> [N, K / 2] uint8, two codes a byte (the low nibble first)."""
    codes = codes.to(torch.uint8)
    return codes[:, 0::2] | (codes[:, 1::2] << 4)


def _from_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Undo `_nibbles`: [N, K / 2] uint8 -> codes [N, K] uint8."""
    return torch.stack([packed & 15, packed >> 4], dim=-1).flatten(1)
