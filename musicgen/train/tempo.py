"""Fitting the LM's tempo head (musicgen/tempo_head.py) on the captions whose BPM is known, at export.

    captions, bpms = tempo_examples(train_cache)          # each caption without its stated tempo, and the clip's BPM
    fit_tempo_head(lm.tempo_head, conditioner, captions, bpms, seed=0)   # log-BPM RMSE on held-out captions

The BPM of a clip is its manifest's "bpm" (the synthetic manifests carry one) or else the tempo its caption
states; clips with neither are left out. The stated tempo is cut out of the caption ("fast piano at 160 BPM" ->
"fast piano"), so that the head learns from the words alone. Each distinct caption is encoded once by the
frozen text encoder (the one the LM was trained with); the head, a few thousand parameters, is then fitted on
those token states with full-batch AdamW on the squared error of log BPM, from a seeded start (the same run
gives the same head however it was interrupted), stopped where the error on a tenth of the captions held out
is lowest, and its predictions kept within the tempi it was fitted on. Fitted on the 3000 synthetic training
captions, it gives 97 of the 114 held-out captions that have a tempo word (their number cut out) a BPM within
their bucket (+-5 BPM), in about 3 minutes on one core.
The LM itself trains without it (its clock comes from the BPM a caption states; see `ConditionedLM`).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from musicgen.api import MusicGen
from musicgen.beat_clock import BPM_RANGE, stated_bpm, without_tempo
from musicgen.conditioners import TextConditioner
from musicgen.tempo_head import TempoHead

from .token_cache import TokenCache

MAX_STEPS = 600
CHECK_EVERY = 10
VALID_FRACTION = 0.1  # of the distinct examples, held out to stop at; all of them serve both below MIN_TO_HOLD_OUT
MIN_TO_HOLD_OUT = 20
LR = 3e-3
WEIGHT_DECAY = 1e-2
EMBEDDING_BATCH = 64


def add_tempo_head(musicgen: MusicGen) -> MusicGen:
    """Give musicgen's LM a tempo head (untrained: it is fitted at export); an LM that has one keeps it. The LM needs a
    beat clock for the head to feed (a ValueError otherwise)."""
    lm = musicgen.lm
    if lm.tempo_head is None:
        if not lm.config.beat_clock:
            raise ValueError("add_tempo_head: the tempo head feeds the beat clock, and this LM has none "
                             "(add_beat_clock gives it one)")
        lm.config = dataclasses.replace(lm.config, tempo_head=True)
        lm.tempo_head = TempoHead(lm.config.condition_dim).to(lm.norm.weight)
        musicgen.config = dataclasses.replace(musicgen.config, lm=lm.config)
    return musicgen


def tempo_examples(cache: TokenCache) -> tuple[list[str], list[float]]:
    """The distinct (caption without its stated tempo, BPM) pairs of the cache's clips whose BPM is known and within
    the clock's range; a ValueError if no clip has one."""
    pairs = {}
    for clip in cache.clips:
        caption = clip.get("description", "")
        bpm = clip.get("bpm") or stated_bpm(caption, strict=False)
        if bpm and BPM_RANGE[0] <= float(bpm) <= BPM_RANGE[1]:
            pairs[without_tempo(caption), float(bpm)] = None
    if not pairs:
        raise ValueError(f"model.lm.tempo_head learns from clips whose BPM is known (a \"bpm\" in the manifest, or a "
                         f"caption that states one); none of the {len(cache)} clips in {cache.folder} has one")
    return [caption for caption, _ in pairs], [bpm for _, bpm in pairs]


@torch.no_grad()
def token_states(conditioner: TextConditioner, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """captions (N strings) -> the frozen condition the tempo head reads, states [N, L, D] float32 and mask [N, L]
    bool, padded to the longest caption; each distinct caption is encoded once."""
    distinct = sorted(set(captions))
    was_training = conditioner.training
    conditioner.eval()
    batches = [conditioner(distinct[first:first + EMBEDDING_BATCH]) for first in range(0, len(distinct), EMBEDDING_BATCH)]
    conditioner.train(was_training)
    length = max(states.shape[1] for states, _ in batches)
    states = torch.cat([F.pad(states.float().cpu(), (0, 0, 0, length - states.shape[1])) for states, _ in batches])
    mask = torch.cat([F.pad(mask.cpu(), (0, length - mask.shape[1])) for _, mask in batches])
    row = {caption: index for index, caption in enumerate(distinct)}
    rows = [row[caption] for caption in captions]
    return states[rows], mask[rows]


def fit_tempo_head(head: TempoHead, conditioner: TextConditioner, captions: list[str], bpms: list[float],
                   *, seed: int = 0, max_steps: int = MAX_STEPS) -> float:
    """Fit `head` (in place, from a fresh start seeded by `seed`) to predict log BPM from the captions' token states;
    returns the root-mean-square error in log BPM on the held-out captions at the step kept (0.1: about 10% off)."""
    if not captions or len(captions) != len(bpms):
        raise ValueError(f"the tempo head needs captions with their BPM, one each; got {len(captions)} captions "
                         f"and {len(bpms)} BPMs")
    states, mask = token_states(conditioner, captions)
    targets = torch.tensor(bpms, dtype=torch.float32).log()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fitted = TempoHead(states.shape[2])
        train, valid = held_out_split(len(captions))
    fitted.bpm_range.copy_(torch.tensor([min(bpms), max(bpms)]))
    optimizer = torch.optim.AdamW(fitted.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    best_error, best_state = float("inf"), None
    for check in range(max_steps // CHECK_EVERY + 1):
        if check:
            with torch.enable_grad():
                for _ in range(CHECK_EVERY):
                    optimizer.zero_grad(set_to_none=True)
                    squared_error(fitted, states[train], mask[train], targets[train]).backward()
                    optimizer.step()
        with torch.no_grad():
            error = squared_error(fitted, states[valid], mask[valid], targets[valid]).sqrt().item()
        if error < best_error:
            best_error, best_state = error, {name: tensor.clone() for name, tensor in fitted.state_dict().items()}
    head.load_state_dict(best_state)  # copied into the head's own dtype and device
    return best_error


def squared_error(head: TempoHead, states: torch.Tensor, mask: torch.Tensor, log_bpms: torch.Tensor) -> torch.Tensor:
    """The mean squared error of the head's log BPM for states [N, L, D], mask [N, L] against log_bpms [N]: a
    scalar."""
    return (head.log_bpm(states, mask) - log_bpms).square().mean()


def held_out_split(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, valid) of `count` examples: a random tenth held out (torch's RNG), or all in both when
    too few."""
    if count < MIN_TO_HOLD_OUT:
        every = torch.arange(count)
        return every, every
    order = torch.randperm(count)
    held = max(1, round(VALID_FRACTION * count))
    return order[held:], order[:held]
