"""The five codebook interleaving patterns. Each provider draws its layout for K = 4 streams.

Notation: `t0k1` is frame 0 of codebook 1; `.` is an empty slot (the special token).
The layouts (and so the sequences) equal audiocraft's providers with keep_only_valid_steps=False.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from .pattern import Layout, Pattern


def check_n_q(num_codebooks: int) -> int:
    """num_codebooks itself, or ValueError unless it is an integer >= 1."""
    if not isinstance(num_codebooks, int) or isinstance(num_codebooks, bool) or num_codebooks < 1:
        raise ValueError(f"num_codebooks must be an integer >= 1, got {num_codebooks!r}")
    return num_codebooks


class PatternProvider(ABC):
    """Makes the pattern of one layout for any number of frames."""

    def __init__(self, num_codebooks: int) -> None:
        self.num_codebooks = check_n_q(num_codebooks)

    def get_pattern(self, timesteps: int) -> Pattern:
        """The pattern for `timesteps` frames of every codebook."""
        if not isinstance(timesteps, int) or timesteps < 1:
            raise ValueError(f"timesteps must be an integer >= 1, got {timesteps!r}")
        return Pattern(self.layout(timesteps), num_codebooks=self.num_codebooks, timesteps=timesteps)

    @abstractmethod
    def layout(self, timesteps: int) -> Layout:
        """The list of steps for `timesteps` frames; step 0 is empty."""


class DelayedPatternProvider(PatternProvider):
    """Codebook k of frame t at step t + 1 + delays[k]; T + max(delays) steps.

    delays = [0, 1, 2, 3]:
        step:  0   1     2     3     4     5 ...
        k0     .   t0k0  t1k0  t2k0  t3k0  ...
        k1     .   .     t0k1  t1k1  t2k1  ...
        k2     .   .     .     t0k2  t1k2  ...
        k3     .   .     .     .     t0k3  ...
    """

    def __init__(self, num_codebooks: int, delays: Sequence[int] | None = None) -> None:
        super().__init__(num_codebooks)
        delays = list(range(num_codebooks)) if delays is None else list(delays)
        if len(delays) != num_codebooks:
            raise ValueError(f"delays must have one entry per codebook ({num_codebooks}), got {len(delays)}: {delays}")
        if any(not isinstance(d, int) or d < 0 for d in delays):
            raise ValueError(f"delays must be integers >= 0, got {delays}")
        self.delays = delays

    def layout(self, timesteps: int) -> Layout:
        steps: Layout = [[]]
        for step in range(timesteps + max(self.delays)):
            frames = ((step - delay, k) for k, delay in enumerate(self.delays))
            steps.append([(t, k) for t, k in frames if 0 <= t < timesteps])
        return steps


class ParallelPatternProvider(DelayedPatternProvider):
    """All K codebooks of frame t at step t + 1; T steps.

        step:  0   1     2     3 ...
        k0     .   t0k0  t1k0  t2k0
        k1     .   t0k1  t1k1  t2k1
        k2     .   t0k2  t1k2  t2k2
        k3     .   t0k3  t1k3  t2k3
    """

    def __init__(self, num_codebooks: int) -> None:
        super().__init__(num_codebooks, delays=[0] * check_n_q(num_codebooks))


class FlattenPatternProvider(PatternProvider):
    """Frame by frame, the codebooks of each frame spread over steps by `flattening`.

    flattening[k] is the inner step of codebook k inside its frame (non-decreasing, from 0);
    codebooks sharing an inner step are predicted together. With flattening = [0, 1, 2, 3]
    (the default, "flatten") every (t, k) has its own step, t·K + k + 1; K·T steps:
        step:  0   1     2     3     4     5     6 ...
        k0     .   t0k0  .     .     .     t1k0  .
        k1     .   .     t0k1  .     .     .     t1k1
        k2     .   .     .     t0k2  .     .     .
        k3     .   .     .     .     t0k3  .     .
    With flattening = [0, 1, 1, 1] ("partial_flatten") codebook 0 of frame t comes at step 2t + 1
    and codebooks 1..K-1 together at step 2t + 2; 2T steps (T when K = 1):
        step:  0   1     2     3     4 ...
        k0     .   t0k0  .     t1k0  .
        k1-3   .   .     t0k*  .     t1k*
    """

    def __init__(self, num_codebooks: int, flattening: Sequence[int] | None = None) -> None:
        super().__init__(num_codebooks)
        flattening = list(range(num_codebooks)) if flattening is None else list(flattening)
        if len(flattening) != num_codebooks:
            raise ValueError(f"flattening must have one entry per codebook ({num_codebooks}), got {len(flattening)}: {flattening}")
        if flattening[0] != 0 or any(b - a not in (0, 1) for a, b in zip(flattening, flattening[1:])):
            raise ValueError(f"flattening must start at 0 and rise by 0 or 1 per codebook, got {flattening}")
        self.flattening = flattening
        self.inner_steps = flattening[-1] + 1

    def layout(self, timesteps: int) -> Layout:
        steps: Layout = [[]]
        for t in range(timesteps):
            for inner in range(self.inner_steps):
                steps.append([(t, k) for k in range(self.num_codebooks) if self.flattening[k] == inner])
        return steps


class ValleyPatternProvider(PatternProvider):
    """Coarse first: all of codebook 0, one frame a step, then codebooks 1..K-1 frame by frame.

    2T steps (T when K = 1, where there is nothing after the coarse codebook):

        step:  0   1     2     3 ...  T     T+1   T+2 ...
        k0     .   t0k0  t1k0  t2k0   tT-1  .     .
        k1-3   .   .     .     .      .     t0k*  t1k*
    """

    def layout(self, timesteps: int) -> Layout:
        coarse = [[(t, 0)] for t in range(timesteps)]
        fine = [[(t, k) for k in range(1,
                                       self.num_codebooks)] for t in range(timesteps)] if self.num_codebooks > 1 else []
        return [[]] + coarse + fine


def get_provider(name: str, num_codebooks: int, **kwargs) -> PatternProvider:
    """The provider of a pattern by name: parallel, delay, flatten, valley or partial_flatten.

    `delay` takes `delays` (default [0, 1, ..., K-1]); `flatten` takes `flattening`.
    """
    if name == "parallel":
        return ParallelPatternProvider(num_codebooks, **kwargs)
    if name == "delay":
        return DelayedPatternProvider(num_codebooks, **kwargs)
    if name == "flatten":
        return FlattenPatternProvider(num_codebooks, **kwargs)
    if name == "partial_flatten":
        return FlattenPatternProvider(num_codebooks, flattening=[0] + [1] * (check_n_q(num_codebooks) - 1), **kwargs)
    if name == "valley":
        return ValleyPatternProvider(num_codebooks, **kwargs)
    raise ValueError(f"unknown pattern {name!r}; valid names: {', '.join(PATTERN_NAMES)}")


PATTERN_NAMES = ("parallel", "delay", "flatten", "valley", "partial_flatten")
