"""A codebook pattern: K parallel token streams of T frames laid out as one sequence of steps.

The layout is a list of steps; each step lists the (t, k) coordinates (frame t of codebook k)
that the LM predicts together at that step. Step 0 is always empty, so a sequence starts with
an all-special column. Every (t, k) appears exactly once and a codebook's frames come in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

Coordinate = tuple[int, int]
Layout = list[list[Coordinate]]


@dataclass
class Pattern:
    """A validated layout plus the gather indexes that move tokens between the two shapes.

    `step_of[k, t]` is the step holding frame t of codebook k. Built sequences have
    `len(layout)` steps; `num_steps` (= len(layout) - 1) is the number of steps the LM predicts.
    """

    layout: Layout
    num_codebooks: int
    timesteps: int
    step_of: torch.Tensor = field(init=False, repr=False)
    frame_at: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.num_codebooks < 1 or self.timesteps < 1:
            raise ValueError(f"a pattern needs num_codebooks >= 1 and timesteps >= 1, got num_codebooks={self.num_codebooks}, timesteps={self.timesteps}")
        if not self.layout or self.layout[0]:
            raise ValueError("layout[0] must be the empty first step")
        step_of = torch.full((self.num_codebooks, self.timesteps), -1, dtype=torch.long)
        frame_at = torch.full((self.num_codebooks, len(self.layout)), self.timesteps, dtype=torch.long)
        for step, coordinates in enumerate(self.layout):
            for t, k in coordinates:
                if not (0 <= t < self.timesteps and 0 <= k < self.num_codebooks):
                    raise ValueError(f"coordinate {(t, k)} at step {step} is outside T={self.timesteps}, K={self.num_codebooks}")
                if step_of[k, t] >= 0:
                    raise ValueError(f"coordinate {(t, k)} appears twice (steps {int(step_of[k, t])} and {step})")
                if frame_at[k, step] != self.timesteps:
                    raise ValueError(f"codebook {k} appears twice at step {step}")
                step_of[k, t] = step
                frame_at[k, step] = t
        if (step_of < 0).any():
            k, t = (step_of < 0).nonzero()[0].tolist()
            raise ValueError(f"coordinate {(t, k)} never appears in the layout")
        if (step_of[:, 1:] <= step_of[:, :-1]).any():
            raise ValueError("a codebook's frames must come at rising steps")
        self.step_of = step_of
        self.frame_at = frame_at

    @property
    def num_steps(self) -> int:
        """Steps the LM predicts: every step of the layout but the empty first one."""
        return len(self.layout) - 1

    def valid_mask(self) -> torch.Tensor:
        """[K, len(layout)] bool: True where a step holds a real frame of that codebook."""
        return self.frame_at < self.timesteps

    def first_step_with_timestep(self, t: int) -> int:
        """The first step that holds frame t of any codebook (generation resumes there after t prompt frames)."""
        if not 0 <= t < self.timesteps:
            raise ValueError(f"timestep must be in [0, {self.timesteps}), got {t}")
        return int(self.step_of[:, t].min())

    def build_sequence(self, codes: torch.Tensor, special_token: int) -> tuple[torch.Tensor, torch.Tensor]:
        """codes [B, K, T] -> (sequence [B, K, len(layout)], mask [K, len(layout)]); empty slots hold special_token."""
        self._check_shape(codes, "codes", self.timesteps, "T")
        batch = codes.shape[0]
        padded = torch.cat([codes, codes.new_full((batch, self.num_codebooks, 1), special_token)], dim=-1)
        index = self.frame_at.to(codes.device).expand(batch, -1, -1)
        return padded.gather(-1, index), self.valid_mask().to(codes.device)

    def revert_sequence(self, sequence: torch.Tensor, special_token: int) -> tuple[torch.Tensor, torch.Tensor]:
        """sequence [B, K, S'] (S' <= len(layout)) -> (codes [B, K, T], mask [K, T]).

        A frame whose step lies beyond S' is not in the sequence yet: it comes back as
        special_token with mask False.
        """
        return self._revert(sequence, self.step_of, special_token, "sequence")

    def revert_logits(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """logits [B, K, S', card] -> (logits [B, K, T, card], mask [K, T]).

        The logit at step s predicts the tokens of layout[s + 1]; frames it does not reach are NaN.
        """
        return self._revert(logits, self.step_of - 1, float("nan"), "logits")

    def _revert(self, values: torch.Tensor, steps: torch.Tensor, fill: float, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_shape(values, name, None, "S")
        batch, _, length = values.shape[:3]
        if length > len(self.layout):
            raise ValueError(f"{name} has {length} steps, more than the pattern's {len(self.layout)}")
        trailing = values.shape[3:]
        padded = torch.cat([values, values.new_full((batch, self.num_codebooks, 1, *trailing), fill)], dim=2)
        steps = steps.to(values.device)
        mask = steps < length
        index = torch.where(mask, steps, length)
        index = index.view(1, self.num_codebooks, self.timesteps, *([1] * len(trailing)))
        index = index.expand(batch, -1, -1, *trailing)
        return padded.gather(2, index), mask

    def _check_shape(self, values: torch.Tensor, name: str, length: int | None, length_name: str) -> None:
        if values.dim() < 3 or values.shape[1] != self.num_codebooks:
            raise ValueError(f"{name} must be [B, K={self.num_codebooks}, {length_name}, ...], got shape {tuple(values.shape)}")
        if length is not None and values.shape[2] != length:
            raise ValueError(f"{name} must have {length_name}={length} frames, got {values.shape[2]}")
