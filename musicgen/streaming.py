"""Streaming audio: codes that arrive a few frames at a time, decoded in chunks that join into the whole clip's audio.

A decoder's output at frame t depends on the codes of frames t - behind .. t + ahead (its reach). A chunk of
frames [done, ready) is decoded from frames [done - behind, known) and cropped, where ready = known - ahead
(everything at the end of the clip): it equals that stretch of the whole clip's decoding, up to float rounding.

    frames   0 ............ done ........... ready ....... known ............. total
    decoded            [ behind | the chunk  | ahead      ]

A decoder with a recurrent layer (SEANet's LSTM) reaches back to the first frame: each of its chunks decodes
everything known so far (the cost of a chunk grows with the clip).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from codec import Codec

PROBE_FRAMES = 32
MAX_PROBE_FRAMES = 1024
SAFETY_FRAMES = 1
EDGE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Reach:
    """The frames on each side that a decoder's output frame depends on (behind None: every frame before it), and the
    fewest frames a decoded stretch must hold for that to be so (padding a shorter input differs)."""

    behind: int | None
    ahead: int
    shortest: int = 1


@torch.inference_mode()
def measure_reach(codec: Codec) -> Reach:
    """The reach of codec's decoder, found by changing the codes of one frame in the middle of random codes
    [1, K, 2n + 1] and seeing which output frames move; n doubles from PROBE_FRAMES while the change reaches an end,
    up to MAX_PROBE_FRAMES, beyond which `behind` counts as unbounded (None; a decoder whose `ahead` is unbounded
    cannot stream: ValueError). A recurrent layer makes `behind` unbounded: its memory fades at a rate that depends
    on the input, the probe's or another. SAFETY_FRAMES are added to each side. `shortest`: the fewest first frames
    of the probe whose decoding, less `ahead` frames, is that of the whole probe, as it is for every longer start."""
    generator = torch.Generator().manual_seed(0)
    decode = partial(_decode_on, codec)
    side = PROBE_FRAMES
    while True:
        codes = torch.randint(codec.cardinality, (1, codec.num_codebooks, 2 * side + 1), generator=generator)
        changed = codes.clone()
        changed[..., side] = (codes[..., side] + 1) % codec.cardinality
        whole = decode(codes)
        moved = (whole != decode(changed)).flatten(0, 1).any(dim=0)
        frames = moved.reshape(-1, codec.hop_length).any(dim=-1).nonzero()[:, 0].tolist()
        ahead, behind = side - min(frames, default=side), max(frames, default=side) - side
        if max(ahead, behind) < side:
            recurrent = any(isinstance(module, nn.RNNBase) for module in codec.decoder.modules())
            reach = Reach(None if recurrent else behind + SAFETY_FRAMES, ahead + SAFETY_FRAMES)
            return dataclasses.replace(reach, shortest=_shortest(decode, codes, whole, reach.ahead * codec.hop_length))
        if 2 * side > MAX_PROBE_FRAMES:
            if ahead >= side:
                raise ValueError(f"the decoder's output depends on codes more than {side} frames ahead; "
                                 "it cannot be decoded in chunks")
            return Reach(None, ahead + SAFETY_FRAMES, MAX_PROBE_FRAMES)
        side *= 2


def _decode_on(codec: Codec, codes: torch.Tensor) -> torch.Tensor:
    return codec.decode(codes.to(next(codec.parameters()).device)).cpu()


def _shortest(decode: Callable[[torch.Tensor], torch.Tensor], codes: torch.Tensor, whole: torch.Tensor,
              ahead_samples: int) -> int:
    """The fewest first frames of codes [1, K, T] from which on every start's decoding, less its last ahead_samples,
    matches whole [1, C, T * hop] (to EDGE_TOLERANCE)."""
    shortest = codes.shape[-1]
    while shortest > 1:
        start = decode(codes[..., :shortest - 1])
        kept = start.shape[-1] - ahead_samples
        if kept > 0 and (start[..., :kept] - whole[..., :kept]).abs().max() > EDGE_TOLERANCE:
            break
        shortest -= 1
    return shortest


def stream_audio(decode: Callable[[torch.Tensor], torch.Tensor], frames: Iterable[torch.Tensor], *, reach: Reach,
                 total_frames: int, chunk_frames: int, hop: int) -> Iterator[torch.Tensor]:
    """Codes [B, K, n] arriving in order (`total_frames` in all) -> wav chunks [B, C, m * hop], each of at least
    chunk_frames frames but the last, decoded as soon as their reach is known; concatenated, the whole clip's
    decode(codes [B, K, total_frames]). decode: codes [B, K, T] -> wav [B, C, T * hop]."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    kept, offset, done = None, 0, 0  # kept holds frames offset .. known
    for new in frames:
        kept = new if kept is None else torch.cat([kept, new.to(kept.device)], dim=-1)
        known = offset + kept.shape[-1]
        if known > total_frames:
            raise ValueError(f"got {known} frames, more than the {total_frames} announced")
        ready = known if known == total_frames else known - reach.ahead
        if known < total_frames and (ready - done < chunk_frames or known < reach.shortest):
            continue
        start = _first_needed(reach, done, known)
        wav = decode(kept[..., start - offset:])
        yield wav[..., (done - start) * hop:(ready - start) * hop]
        done = ready
        first = _first_needed(reach, done, known)
        kept, offset = kept[..., first - offset:], first
    if done < total_frames:
        raise ValueError(f"the codes ended after {done} of {total_frames} frames")


def _first_needed(reach: Reach, done: int, known: int) -> int:
    """The first frame to decode for frames from `done` on, `known` frames being known: `behind` before done, and at
    least `shortest` frames in all."""
    if reach.behind is None:
        return 0
    return max(0, min(done - reach.behind, known - reach.shortest))
