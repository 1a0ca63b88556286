"""Token generation: one loop for every codebook pattern, with a KV cache and classifier-free guidance.

    prefill(prefix rows, steps 0 .. start-1) ─► logits ─► sample ─► column of step `start` ─► decode_one_token ─► ...

The pattern decides which codebooks a step holds: the loop samples all K codebooks every step and
keeps a sampled token only where the step holds a frame still to generate; prompt frames and empty
slots (the special token) come from the sequence built from the prompt. With guidance the batch
runs twice, conditioned rows first and null-conditioned rows after, and each step's logits are
`uncond + (cond - uncond) * cfg_coef`. A melody-conditioned LM's null rows get the "no melody" chroma (bin 0 in
every frame, as many frames as the melodies' chroma), as transformers' and audiocraft's melody models do.

Sampling reads K uniforms a step for each row, drawn before the loop from that row's own generator
(`row_generators`: row r of a request seeded from (seed, r)), so that a row's tokens do not depend on the
rows batched with it; greedy decoding reads none.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from patterns import Pattern

from .chroma import null_chroma
from .conditioners import null_condition
from .config import Sampling
from .lm import LM, Memory

ProgressCallback = Callable[[int, int], None]
CACHE_ROUNDING = 256


def sample_tokens(logits: torch.Tensor, sampling: Sampling, uniforms: torch.Tensor | None) -> torch.Tensor:
    """logits [B, K, card] -> tokens [B, K] int64: greedy, or temperature + top-k, then top-p, then a draw
    by inverse CDF from uniforms [B, K] in [0, 1) (one per token; unused when greedy)."""
    if sampling.greedy:
        return logits.argmax(dim=-1)
    logits = logits.float() / sampling.temperature
    candidates = None
    if 0 < sampling.top_k < logits.shape[-1]:
        logits, candidates = logits.topk(sampling.top_k, dim=-1)
    probs = torch.softmax(logits, dim=-1)
    if sampling.top_p > 0:
        probs, order = probs.sort(dim=-1, descending=True)
        outside = probs.cumsum(dim=-1) - probs > sampling.top_p
        probs = probs.masked_fill(outside, 0.0)
        candidates = order if candidates is None else candidates.gather(-1, order)
    choice = inverse_cdf(probs, uniforms)
    if candidates is not None:
        choice = candidates.gather(-1, choice[..., None])[..., 0]
    return choice


def inverse_cdf(weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """weights [..., n] >= 0 (not all 0, need not sum to 1), uniforms [...] in [0, 1) -> indices [...] int64:
    index i with probability weights[i] / sum, the first whose cumulative weight reaches (1 - u) * sum.
    (1 - u) is in (0, 1], so the target is > 0 and <= the last cumulative weight: a weight of 0 is never picked."""
    cumulative = weights.cumsum(dim=-1)
    target = (1 - uniforms) * cumulative[..., -1]
    return (cumulative < target[..., None]).sum(dim=-1)


def row_generators(seed: int, rows: range, device: torch.device) -> list[torch.Generator]:
    """One generator on `device` per row of `rows`, row r's seeded from (seed, r) through numpy's SeedSequence:
    well mixed, so that nearby seeds and rows give unrelated streams (seed + r would make (0, 1) and (1, 0) one).
    seed and rows are integers >= 0."""
    return [torch.Generator(device=device).manual_seed(_row_seed(seed, row)) for row in rows]


def _row_seed(seed: int, row: int) -> int:
    """A 64-bit seed for row `row` of a request seeded `seed`."""
    return int(np.random.SeedSequence([seed, row]).generate_state(1, np.uint64)[0])


def draw_uniforms(generators: Sequence[torch.Generator] | None, shape: tuple[int, int, int],
                  device: torch.device) -> torch.Tensor:
    """Uniforms of shape [B, steps, K] in [0, 1): row b's drawn from generators[b] (continuing its stream), or
    all from torch's global RNG when generators is None."""
    if generators is None:
        return torch.rand(shape, device=device)
    if len(generators) != shape[0]:
        raise ValueError(f"got {len(generators)} generators for {shape[0]} rows; expected one per row")
    return torch.stack([torch.rand(shape[1:], generator=generator, device=device) for generator in generators])


def guided_logits(run: Callable[[torch.Tensor], torch.Tensor], tokens: torch.Tensor, *,
                  cfg_coef: float | None) -> torch.Tensor:
    """tokens [B, K, S'] -> logits [B, K, card] of the last step through run (tokens -> logits: the LM's prefill,
    decode or compiled decode); with cfg_coef the LM runs 2B rows (cond, then null)."""
    if cfg_coef is None:
        return run(tokens)
    cond, uncond = run(tokens.repeat(2, 1, 1)).chunk(2)
    return uncond + (cond - uncond) * cfg_coef


def with_null_rows(condition: torch.Tensor, condition_mask: torch.Tensor, clock: torch.Tensor | None = None,
                   chroma: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None,
                                                             torch.Tensor | None]:
    """The 2B rows of guidance: the B given rows, then B null ones (no condition, no clock, the null chroma)."""
    null, null_mask = null_condition(condition, condition_mask)
    clock = None if clock is None else torch.cat([clock, torch.zeros_like(clock)])
    chroma = None if chroma is None else torch.cat([chroma, null_chroma(*chroma.shape, dtype=chroma.dtype,
                                                                        device=chroma.device)])
    return torch.cat([condition, null]), torch.cat([condition_mask, null_mask]), clock, chroma


def prefill(lm: LM, tokens: torch.Tensor, memory: Memory, cfg_coef: float | None) -> torch.Tensor:
    """Run memory's prefix rows and the known steps 0 .. S'-1 in one call: tokens [B, K, S'] -> logits [B, K, card]
    for step S'."""
    return guided_logits(lambda rows: lm.prefill(rows, memory), tokens, cfg_coef=cfg_coef)


def decode_one_token(lm: LM, column: torch.Tensor, position: torch.Tensor, memory: Memory, *, cfg_coef: float | None,
                     length: int | None = None) -> torch.Tensor:
    """The hot step: column [B, K, 1] at position [1] -> logits [B, K, card] for the next step.

    length (position + 1) limits attention to the cache written so far; None keeps shapes static, as
    the LM's compiled decode (LM.compile_decode), used when there is one, needs.
    """
    decode = lm.compiled_decode or lm.decode
    return guided_logits(lambda rows: decode(rows, position, memory, length), column, cfg_coef=cfg_coef)


@torch.inference_mode()
def generate_codes(lm: LM, pattern: Pattern, condition: torch.Tensor, condition_mask: torch.Tensor, *,
                   sampling: Sampling, prompt: torch.Tensor | None = None,
                   generators: Sequence[torch.Generator] | None = None, progress: ProgressCallback | None = None,
                   clock: torch.Tensor | None = None, chroma: torch.Tensor | None = None) -> torch.Tensor:
    """Generate pattern.timesteps frames: codes [B, K, T] int64, the prompt's T_p frames then `stream_codes`'s."""
    made = list(stream_codes(lm, pattern, condition, condition_mask, sampling=sampling, prompt=prompt,
                             generators=generators, progress=progress, clock=clock, chroma=chroma))
    return torch.cat(made if prompt is None else [prompt.to(made[0].device), *made], dim=-1)


@torch.inference_mode()
def stream_codes(lm: LM, pattern: Pattern, condition: torch.Tensor, condition_mask: torch.Tensor, *,
                 sampling: Sampling, prompt: torch.Tensor | None = None,
                 generators: Sequence[torch.Generator] | None = None, progress: ProgressCallback | None = None,
                 clock: torch.Tensor | None = None, chroma: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Generate frames T_p .. pattern.timesteps - 1, yielding codes [B, K, n] int64 (n >= 1) as soon as each frame
    has all K codebooks, in order (with the delay pattern, a frame a step once the first K - 1 steps are done).

    condition [B, L, condition_dim], condition_mask [B, L] bool; prompt [B, K, T_p] int64 codes kept as the
    first T_p frames (T_p < T; not yielded); generators: B, one per row, each continuing its stream
    (`row_generators`), or None for torch's global RNG; clock [B, 2] for an LM with a beat clock
    (`beat_clock.beat_clock`; the null rows of guidance get none); chroma [B, T_c, chroma_bins] one-hot
    (musicgen/chroma.py) for a melody-conditioned LM, None for "no melody". progress(done, total) is called after
    each step; an exception it raises (or closing the iterator) stops generation between steps.
    """
    batch, special = condition.shape[0], lm.special_token
    device = lm.device
    codes = torch.full((batch, pattern.num_codebooks, pattern.timesteps), special, dtype=torch.long, device=device)
    prompt_frames = _place_prompt(codes, prompt)
    sequence, valid = pattern.build_sequence(codes, special)
    to_generate = valid & (pattern.frame_at.to(device) >= prompt_frames)
    start = first_generated_step(pattern, prompt_frames)
    total = sequence.shape[-1]
    step_of = pattern.step_of.to(device)
    finished_after = step_of.max(dim=0).values.tolist()  # frame t is whole once step finished_after[t] is sampled
    yielded = prompt_frames

    cfg_coef = sampling.cfg_coef if sampling.guided else None
    if cfg_coef is not None:
        condition, condition_mask, clock, chroma = with_null_rows(condition, condition_mask, clock, chroma)
    uniforms = None if sampling.greedy else draw_uniforms(generators, (batch, total - start, pattern.num_codebooks),
                                                          device)
    positions = torch.arange(total, device=device)
    memory = lm.memory(condition, condition_mask, clock, chroma)
    lm.setup_caches(condition.shape[0], _cache_steps(lm, total - 1), memory.prefix_length)
    try:
        logits = prefill(lm, sequence[..., :start], memory, cfg_coef)
        for step in range(start, total):
            tokens = sample_tokens(logits, sampling, None if uniforms is None else uniforms[:, step - start])
            sequence[..., step] = torch.where(to_generate[:, step], tokens, sequence[..., step])
            if step + 1 < total:
                logits = decode_one_token(lm, sequence[..., step:step + 1], positions[step:step + 1], memory,
                                          cfg_coef=cfg_coef, length=None if lm.compiled_decode else step + 1)
            if progress is not None:
                progress(step - start + 1, total - start)
            finished = yielded
            while finished < pattern.timesteps and finished_after[finished] <= step:
                finished += 1
            if finished > yielded:
                yield sequence.gather(-1, step_of[:, yielded:finished].expand(batch, -1, -1))
                yielded = finished
    finally:
        lm.clear_caches()


def _cache_steps(lm: LM, steps: int) -> int:
    """The KV cache positions a call needs; a compiled decode gets them rounded up to a multiple of
    CACHE_ROUNDING, so that calls of nearby lengths share a graph."""
    if lm.compiled_decode is None:
        return steps
    return min(lm.config.max_positions, -(-steps // CACHE_ROUNDING) * CACHE_ROUNDING)


def first_generated_step(pattern: Pattern, prompt_frames: int) -> int:
    """The first step generation samples: step 1 without a prompt, else the first step touching a frame after it."""
    return pattern.first_step_with_timestep(prompt_frames) if prompt_frames else 1


def _place_prompt(codes: torch.Tensor, prompt: torch.Tensor | None) -> int:
    """Copy prompt [B, K, T_p] into the first frames of codes [B, K, T]; return T_p."""
    if prompt is None:
        return 0
    batch, num_codebooks, timesteps = codes.shape
    if prompt.dim() != 3 or prompt.shape[:2] != (batch, num_codebooks) or not 0 < prompt.shape[-1] < timesteps:
        raise ValueError(f"prompt codes must be [B={batch}, K={num_codebooks}, T_p] with 0 < T_p < {timesteps}, "
                         f"got {tuple(prompt.shape)}")
    codes[..., :prompt.shape[-1]] = prompt
    return prompt.shape[-1]
