"""The MusicGen LM: a pre-norm Transformer decoder over K summed codebook streams, cross-attending to text.

    [prefix rows,] sequence [B, K, S] ─► sum of K token embeddings + sinusoidal positions ─► N × Block ─► norm
    ─► K heads
    (or, with position_encoding "rope", no positions added: self-attention rotates queries and keys instead;
    with beat_clock, the beat's phase at each step is added too: musicgen/beat_clock.py; with tempo_head, the tempo
    a prompt's words imply, for the clock of a prompt that states none: musicgen/tempo_head.py)
    Block: x + SelfAttention(norm(x)) ─► x + CrossAttention(norm(x), condition) ─► x + FeedForward(norm(x))
    (the two attentions and the KV cache: musicgen/attention.py)

A prefix of P rows may come before the tokens, under the same causal self-attention, at positions 0 .. P-1 (the
tokens then at P ..): for a melody-conditioned LM (chroma_bins > 0) the projected chroma, tiled or cut to
chroma_frames rows; for an LM without cross-attention (cross_attention false) the projected text after it, padding
rows zero. MusicGen's melody models have both: [chroma rows, text rows, tokens]. The prefix's outputs are not scored.
With chroma_stride (this project's melody models, which keep cross-attention to the text) there is no prefix: the
chroma is time-aligned instead, each step's input summed with the projected chroma row of the frame it predicts
(step s + 1 sounds at chroma row (s + 1) / chroma_stride, rounded; the last row past the end), so that a step hears
the melody of its own time without having to find it by attention (as JASCO's time-aligned conditions do).

`LM.forward` scores a whole sequence at once (teacher forcing). Generation instead calls
`setup_caches` once, then `decode` with a few steps at a time: every self-attention layer writes
its keys and values into a preallocated `KVCache` (no concatenation) and attends over it through
a causal mask, either over the part written so far (fewest bytes read, on the CPU) or over all
of it (shapes fixed from step to step, for `compile_decode`'s compiled or graph-captured step). The
condition's cross-attention keys and values (and the prefix rows) are computed once per call by `memory`;
`prefill` writes the prefix and the first steps into the cache, and every `decode` after it reads them. A decode
step streams every weight once for a few rows, so it is bound by memory traffic: `pack_for_cpu` lays the float32
weights out for oneDNN's CPU matmul and `quantize_int8` or `quantize_int4` swaps them for int8 or int4 ones, all after
`fuse_projections` has made one matmul of each layer's query/key/value and of the heads.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from infra.weights import load_weights

from .attention import CrossAttention, KVCache, SelfAttention, additive_mask
from .beat_clock import BeatClock
from .chroma import null_chroma, rows_by_step, tile_frames
from .config import LMConfig
from .fast_linear import (INT4_GROUP_SIZE, Int4Linear, Int8Linear, PackedLinear, can_pack, concatenated_linears,
                          split_linear)
from .positions import rotary_angles, sinusoidal_positions
from .tempo_head import TempoHead

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}  # by LMConfig.activation (config.ACTIVATION_NAMES)


def replaced_for_inference(name: str) -> bool:
    """Whether an LM state-dict tensor is a matrix of the layers or heads, which `pack_for_cpu` and
    `quantize_int8`/`quantize_int4` replace by new ones (read through a mapping of their own:
    `infra.weights.read_weights`); the layer norms are not."""
    return name.startswith(("layers.", "heads.")) and "_norm." not in name


class FeedForward(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.down = nn.Linear(config.ffn_dim, config.dim, bias=False)
        self.activation = ACTIVATIONS[config.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.up(x)))


class Block(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.dropout = config.dropout
        self.self_attention_norm = nn.LayerNorm(config.dim)
        self.self_attention = SelfAttention(config)
        self.cross_attention_norm = nn.LayerNorm(config.dim) if config.cross_attention else None
        self.cross_attention = CrossAttention(config) if config.cross_attention else None
        self.feed_forward_norm = nn.LayerNorm(config.dim)
        self.feed_forward = FeedForward(config)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, self_mask: torch.Tensor | None,
                memory: tuple[torch.Tensor, torch.Tensor] | None, memory_mask: torch.Tensor | None,
                rotation: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x [B, S, D] at cache positions [S]; memory: this layer's cross-attention keys/values (None without it)."""
        x = x + self._drop(self.self_attention(self.self_attention_norm(x), positions, self_mask, rotation))
        if self.cross_attention is not None:
            x = x + self._drop(self.cross_attention(self.cross_attention_norm(x), *memory, memory_mask))
        return x + self._drop(self.feed_forward(self.feed_forward_norm(x)))

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, self.training) if self.dropout else x


@dataclass
class Memory:
    """What every step is conditioned on: per-layer cross-attention keys/values [B, H, L, head_dim] and their additive
    mask [B, 1, 1, L] (`attention.additive_mask`; both None for an LM without cross-attention), for an LM with a beat
    clock the clock [B, 2] (`beat_clock.beat_clock`; None: no clock), the prefix rows [B, P, D] that come before the
    tokens (None: none), and for an LM with chroma_stride the projected chroma row of every step [B, max_positions, D],
    summed with its input."""

    keys_values: list[tuple[torch.Tensor, torch.Tensor]] | None
    mask: torch.Tensor | None
    clock: torch.Tensor | None = None
    prefix: torch.Tensor | None = None
    aligned_chroma: torch.Tensor | None = None

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix is None else self.prefix.shape[1]


class LM(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.condition_projection = nn.Linear(config.condition_dim, config.dim)
        self.chroma_projection = nn.Linear(config.chroma_bins, config.dim) if config.melody else None
        self.embeddings = nn.ModuleList(nn.Embedding(config.cardinality + 1,
                                                     config.dim) for _ in range(config.num_codebooks))
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.dim)
        self.heads = nn.ModuleList(nn.Linear(config.dim, config.cardinality,
                                             bias=False) for _ in range(config.num_codebooks))
        self.fused_heads: nn.Module | None = None  # the K heads in one (fuse_projections)
        self.register_buffer("causal_mask", None, persistent=False)  # [positions, positions] additive; setup_caches
        self.compiled_decode: Callable | None = None  # compile_decode
        # a compiled LM's caches, for its next call of the same size: ((batch, positions, dtype, device), caches, mask)
        self.kept_caches: tuple[tuple, list[KVCache], torch.Tensor] | None = None
        self.apply(_init_weights)
        self.beat_clock = BeatClock(config.dim) if config.beat_clock else None
        self.tempo_head = TempoHead(config.condition_dim) if config.tempo_head else None

    @classmethod
    def from_weights(cls, config: LMConfig, state_dict: dict[str, torch.Tensor]) -> LM:
        """An LM holding the tensors of `state_dict` themselves: built on the meta device (no memory, no random
        initialisation), each tensor assigned (`codec.model.load_weights`)."""
        with torch.device("meta"):
            lm = cls(config)
        load_weights(lm, state_dict)
        return lm

    def add_beat_clock(self) -> LM:
        """Give an LM without one a beat clock (zero, so the LM's output is unchanged until it is trained)."""
        if self.beat_clock is None:
            self.config.beat_clock = True
            self.beat_clock = BeatClock(self.config.dim).to(self.norm.weight)
        return self

    @torch.no_grad()
    def inferred_bpm(self, condition: torch.Tensor, condition_mask: torch.Tensor) -> torch.Tensor | None:
        """The tempo head's BPM [B] float32 for condition [B, L, condition_dim], condition_mask [B, L] (0 in rows with
        no condition); None for an LM without a tempo head."""
        return None if self.tempo_head is None else self.tempo_head(condition, condition_mask)

    @property
    def special_token(self) -> int:
        return self.config.cardinality

    @property
    def device(self) -> torch.device:
        return self.norm.weight.device

    def forward(self, sequence: torch.Tensor, condition: torch.Tensor, condition_mask: torch.Tensor,
                clock: torch.Tensor | None = None, chroma: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing. sequence [B, K, S] int64, condition [B, L, condition_dim], condition_mask [B, L] bool,
        clock [B, 2] or None, chroma [B, T_c, chroma_bins] or None (see `memory`) -> logits [B, K, S, card]; the
        logits at step s predict the tokens of step s + 1 (the prefix rows' outputs are dropped)."""
        if self.causal_mask is not None:
            raise RuntimeError("forward runs without caches; call clear_caches() after generation")
        if sequence.shape[-1] > self.config.max_positions:
            raise ValueError(f"the LM has {self.config.max_positions} positions; got a sequence of {sequence.shape[-1]} steps")
        memory = self.memory(condition, condition_mask, clock, chroma)
        positions = torch.arange(sequence.shape[-1], device=sequence.device)
        hidden = self._run(sequence, positions, None, memory, with_prefix=True)
        return self._logits(hidden[:, memory.prefix_length:])

    def memory(self, condition: torch.Tensor, condition_mask: torch.Tensor, clock: torch.Tensor | None = None,
               chroma: torch.Tensor | None = None) -> Memory:
        """Project the condition (and chroma) once: every layer's cross-attention keys/values, and the prefix rows.

        condition [B, L, condition_dim], condition_mask [B, L] bool (False = padding or no condition);
        clock [B, 2] (`beat_clock.beat_clock`), used by an LM with a beat clock and ignored by others;
        chroma [B, T_c, chroma_bins] (musicgen/chroma.py), for a melody-conditioned LM only, None for "no melody".
        """
        if condition.dim() != 3 or condition.shape[-1] != self.config.condition_dim:
            raise ValueError(f"condition must be [B, L, {self.config.condition_dim}], got {tuple(condition.shape)}")
        if condition_mask.shape != condition.shape[:2]:
            raise ValueError(f"condition_mask must be {tuple(condition.shape[:2])}, got {tuple(condition_mask.shape)}")
        if clock is not None and clock.shape != (condition.shape[0], 2):
            raise ValueError(f"clock must be [B={condition.shape[0]}, 2], got {tuple(clock.shape)}")
        if chroma is not None and self.chroma_projection is None:
            raise ValueError("got a chroma for an LM without melody conditioning (lm.chroma_bins = 0)")
        dtype = self.norm.weight.dtype
        projected = self.condition_projection(condition.to(dtype)) * condition_mask[..., None].to(dtype)
        chroma_rows = None if self.chroma_projection is None else self._chroma_rows(chroma, condition.shape[0])
        aligned = self.config.chroma_stride > 0
        prefix = [] if chroma_rows is None or aligned else [chroma_rows]
        keys_values = mask = None
        if self.config.cross_attention:
            keys_values = [layer.cross_attention.keys_values(projected) for layer in self.layers]
            # A row with no condition (the null condition) has all-zero keys and values: it may attend to all
            # of them and get zeros, where an all-False mask row would give NaN in some GPU attention kernels.
            mask = condition_mask.bool()
            mask = additive_mask((mask | ~mask.any(dim=1, keepdim=True))[:, None, None, :], dtype)
        else:
            prefix.append(projected)
        aligned_chroma = (rows_by_step(chroma_rows, self.config.max_positions, self.config.chroma_stride)
                          if aligned else None)
        return Memory(keys_values, mask, clock if self.beat_clock is not None else None,
                      torch.cat(prefix, dim=1) if prefix else None, aligned_chroma)

    def _chroma_rows(self, chroma: torch.Tensor | None, batch: int) -> torch.Tensor:
        """chroma [B, T_c, chroma_bins] (None: "no melody", bin 0 in every frame) -> projected rows [B, chroma_frames, D],
        the T_c rows repeated until there are enough, then cut."""
        bins, weight = self.config.chroma_bins, self.chroma_projection.weight
        if chroma is None:
            chroma = null_chroma(batch, 1, bins, dtype=weight.dtype, device=weight.device)
        if chroma.dim() != 3 or chroma.shape[0] != batch or chroma.shape[1] < 1 or chroma.shape[2] != bins:
            raise ValueError(f"chroma must be [B={batch}, T_c >= 1, {bins}], got {tuple(chroma.shape)}")
        return tile_frames(self.chroma_projection(chroma.to(weight)), self.config.chroma_frames)

    def setup_caches(self, batch: int, max_steps: int, prefix_length: int = 0) -> None:
        """Allocate a KVCache of prefix_length + max_steps positions in every layer (the prefix rows of `Memory`, then
        the steps); `prefill` and `decode` then run step by step. A compiled LM reuses, zeroed, the caches and mask of
        its last call of the same size: its graph reads them at fixed addresses (a new address would recompile a
        frozen graph and re-record a CUDA graph)."""
        if not 1 <= max_steps <= self.config.max_positions:
            raise ValueError(f"max_steps must be in [1, {self.config.max_positions}], got {max_steps}")
        reference, positions = self.norm.weight, prefix_length + max_steps
        size = (batch, positions, reference.dtype, reference.device)
        if self.kept_caches is not None and self.kept_caches[0] == size:
            caches, mask = self.kept_caches[1:]
            for cache in caches:
                cache.clear()
        else:
            caches = [KVCache(batch, self.config.num_heads, positions, self.config.head_dim, dtype=reference.dtype,
                              device=reference.device) for _ in self.layers]
            mask = additive_mask(torch.ones(positions, positions, dtype=torch.bool, device=reference.device).tril(),
                                 reference.dtype)
        for layer, cache in zip(self.layers, caches):
            layer.self_attention.kv_cache = cache
        self.causal_mask = mask
        self.kept_caches = (size, caches, mask) if self.compiled_decode is not None else None

    def quantize_int8(self) -> LM:
        """Fuse the projections, then swap every Linear of the layers and heads for an Int8Linear (generation only)."""
        return self.fuse_projections()._swap_linears(nn.Linear, Int8Linear)

    def quantize_int4(self, group_size: int = INT4_GROUP_SIZE, kernel: bool = True) -> LM:
        """Fuse the projections, then swap every Linear of the layers and heads for an Int4Linear with a scale and zero
        point per group_size inputs (generation only; kernel=False: without torch's int4 kernel, see Int4Linear)."""
        return self.fuse_projections()._swap_linears(nn.Linear, lambda linear: Int4Linear(linear, group_size, kernel))

    def pack_for_cpu(self) -> LM:
        """Fuse the projections, then swap every Linear of the layers and heads for a PackedLinear (faster CPU decoding).

        Generation only: `unpack` before training, saving the modules or moving them to another device.
        Does nothing where torch has no oneDNN or the LM is not float32 on the CPU.
        """
        if not can_pack(self.norm.weight):
            return self
        return self.fuse_projections()._swap_linears(nn.Linear, PackedLinear)

    def unpack(self) -> LM:
        """Undo `pack_for_cpu`: the LM's own nn.Linear layers holding the same weights."""
        return self._swap_linears(PackedLinear, PackedLinear.unpack).split_projections()

    def fuse_projections(self) -> LM:
        """One matmul where a step makes several: each layer's query, key and value, and the K heads (generation only)."""
        for layer in self.layers:
            attention = layer.self_attention
            if attention.query_key_value is None:
                attention.query_key_value = concatenated_linears([attention.query, attention.key, attention.value])
                attention.query = attention.key = attention.value = None
        if self.fused_heads is None:
            self.fused_heads, self.heads = concatenated_linears(self.heads), None
        return self

    def split_projections(self) -> LM:
        """Undo `fuse_projections` (on nn.Linear layers)."""
        for layer in self.layers:
            attention = layer.self_attention
            if attention.query_key_value is not None:
                attention.query, attention.key, attention.value = split_linear(attention.query_key_value, 3)
                attention.query_key_value = None
        if self.fused_heads is not None:
            self.heads, self.fused_heads = nn.ModuleList(split_linear(self.fused_heads, self.config.num_codebooks)), None
        return self

    def _swap_linears(self, kind: type[nn.Module], convert: Callable[[nn.Module], nn.Module]) -> LM:
        """Replace every `kind` module of the layers, and the fused heads, by convert(module)."""
        for module in self.layers.modules():
            for name, child in module.named_children():
                if isinstance(child, kind):
                    setattr(module, name, convert(child))
        if isinstance(self.fused_heads, kind):
            self.fused_heads = convert(self.fused_heads)
        return self

    @property
    def quantized(self) -> bool:
        return any(isinstance(module, (Int8Linear, Int4Linear)) for module in self.modules())

    @property
    def fused(self) -> bool:
        """Whether `fuse_projections` has run (as packing and quantizing do): laid out for generation."""
        return self.fused_heads is not None

    @property
    def packed(self) -> bool:
        return any(isinstance(module, PackedLinear) for module in self.modules())

    def compile_decode(self, mode: str | None = "reduce-overhead", backend: str | Callable = "inductor") -> LM:
        """Compile `decode` into one graph for fixed shapes as `compiled_decode` (torch.compile, fullgraph; on
        CUDA with mode "reduce-overhead", a captured CUDA graph). Generation then runs its one-token steps
        through it, attending over the whole cache every step so that one graph serves every step of a call; the
        caches stay allocated between calls (`setup_caches`). Not with int8 weights on the CPU: torch.compile cannot
        trace the quantization engine's packed weights."""
        if any(isinstance(module, Int8Linear) and module.packed is not None for module in self.modules()):
            raise ValueError("a decode step with int8 weights on the CPU cannot be compiled (torch.compile cannot "
                             "trace the quantization engine's packed weights): use compile or quantize='int8'")
        self.compiled_decode = torch.compile(self.decode, mode=mode, backend=backend, fullgraph=True, dynamic=False)
        return self

    def clear_caches(self) -> None:
        for layer in self.layers:
            layer.self_attention.kv_cache = None
        self.causal_mask = None

    def prefill(self, tokens: torch.Tensor, memory: Memory) -> torch.Tensor:
        """With caches set up: the prefix rows of memory, then tokens [B, K, S'] of steps 0 .. S'-1, in one call ->
        logits [B, K, card] of the last step."""
        if self.causal_mask is None:
            raise RuntimeError("call setup_caches(batch, max_steps, prefix_length) before prefill")
        written = memory.prefix_length + tokens.shape[-1]
        hidden = self._run(tokens, torch.arange(tokens.shape[-1], device=tokens.device),
                           self.causal_mask[:written, :written], memory, with_prefix=True)
        return self._logits(hidden[:, -1:])[:, :, 0]

    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, memory: Memory, length: int | None = None) -> torch.Tensor:
        """With caches set up (and the prefix written by `prefill`): tokens [B, K, S'] at steps positions [S'] ->
        logits [B, K, card] of the last one.

        length: attend over the prefix and the first `length` steps only (those written so far), which spares
        reading the empty rest of the cache; None reads all of it, keeping every shape fixed from step
        to step (for a compiled or graph-captured decode step).
        """
        if self.causal_mask is None:
            raise RuntimeError("call setup_caches(batch, max_steps) before decode")
        offset = memory.prefix_length
        mask = self.causal_mask[positions + offset, :None if length is None else offset + length]
        hidden = self._run(tokens, positions, mask, memory)
        return self._logits(hidden[:, -1:])[:, :, 0]

    def _run(self, tokens: torch.Tensor, positions: torch.Tensor, self_mask: torch.Tensor | None, memory: Memory,
             *, with_prefix: bool = False) -> torch.Tensor:
        """tokens [B, K, S'] of steps positions [S'], at cache positions P + positions after memory's P prefix rows
        (which come first in the output when with_prefix) -> hidden [B, (P +) S', D]."""
        if tokens.dim() != 3 or tokens.shape[1] != self.config.num_codebooks:
            raise ValueError(f"tokens must be [B, K={self.config.num_codebooks}, S], got {tuple(tokens.shape)}")
        at = positions + memory.prefix_length  # cache slots and encoded positions
        x = self._placed(sum(embedding(tokens[:, k]) for k, embedding in enumerate(self.embeddings)), at)
        if memory.clock is not None:
            x = x + self.beat_clock(positions, memory.clock)
        if memory.aligned_chroma is not None:
            x = x + memory.aligned_chroma[:, positions].to(x.dtype)
        if with_prefix and memory.prefix is not None:
            before = torch.arange(memory.prefix_length, device=at.device)
            x = torch.cat([self._placed(memory.prefix.to(x.dtype), before), x], dim=1)
            at = torch.cat([before, at])
        rotation = None
        if self.config.position_encoding == "rope":
            rotation = rotary_angles(at, self.config.head_dim, x.dtype)
        if self.config.dropout and self.training:
            x = F.dropout(x, self.config.dropout, True)
        for index, layer in enumerate(self.layers):
            keys_values = None if memory.keys_values is None else memory.keys_values[index]
            x = layer(x, at, self_mask, keys_values, memory.mask, rotation)
        return self.norm(x)

    def _placed(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x [B, S, D] at positions [S] with MusicGen's sinusoids added (rope turns queries and keys instead)."""
        if self.config.position_encoding == "rope":
            return x
        return x + sinusoidal_positions(positions, self.config.dim).to(x.dtype)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [B, S, D] -> [B, K, S, card]."""
        if self.fused_heads is not None:
            return self.fused_heads(hidden).unflatten(-1, (self.config.num_codebooks, -1)).transpose(1, 2)
        return torch.stack([head(hidden) for head in self.heads], dim=1)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
