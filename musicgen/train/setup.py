"""The parts of LM training around the loop: the model and its sources, token caches, distributed
wrapping (DDP or FSDP), checkpoints with full state on any process count, and the final export.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel

from codec import Codec
from codec.stereo import InterleavedStereoCodec, load_codec
from infra.checkpoints import rng_state, save_checkpoint
from infra.config import config_to_dict
from infra.distributed import DistributedEnv, all_gather_object, barrier
from infra.manifest import read_manifest
from musicgen.api import MusicGen
from musicgen.beat_clock import beat_clock, beats_per_frame, without_tempo
from musicgen.conditioners import TextConditioner
from musicgen.lm import LM
from patterns import Pattern, get_provider

from .config import LMTrainConfig
from .melody import add_melody
from .new_text_encoder import with_text_encoder
from .tempo import add_tempo_head, fit_tempo_head
from .token_cache import TokenCache, build_token_cache, warn_skipped

# Full (unsharded) state on the main process; frozen parameters (a frozen text encoder) are left out.
FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
LOAD_FULL_STATE = StateDictOptions(full_state_dict=True, strict=False)


class ConditionedLM(nn.Module):
    """What a training step runs: captions through the text conditioner (frozen unless trained), then the LM,
    with a beat clock from the BPM each caption states where the LM has one.

    Only a stated BPM drives the clock here, not the tempo head's (frozen here, fitted at export:
    musicgen/train/tempo.py): the clock of a row must match its audio for the LM to learn to follow it, and a tempo
    inferred from words is only near the clip's. At generation a prompt of words alone gets the inferred tempo's
    clock; for the LM to have seen such rows, `tempo_text_dropout` (in training mode) cuts the stated tempo out of
    that share of the captions that state one, keeping their clock: words, and the clock of the clip's true tempo.
    A frozen encoder runs in float32 under autocast too: the LM trains on the condition that generation computes
    (and on a CPU without AMX, MiniLM's forward takes 0.65 s in bfloat16 for 0.11 s in float32).
    """

    def __init__(self, lm: LM, conditioner: TextConditioner, frame_rate: float,
                 tempo_text_dropout: float = 0.0) -> None:
        super().__init__()
        if lm.tempo_head is not None:
            lm.tempo_head.requires_grad_(False)
        self.lm = lm
        self.conditioner = conditioner
        self.frame_rate = frame_rate
        self.tempo_text_dropout = tempo_text_dropout

    def forward(self, inputs: torch.Tensor, captions: list[str], first_frames: torch.Tensor,
                chroma: torch.Tensor | None = None) -> torch.Tensor:
        """inputs [B, K, S] int64, B captions ("" = null condition), first_frames [B] (the clip frame of each
        window's step 0), chroma [B, T_c, bins] for a melody-conditioned LM (musicgen/train/melody.py) ->
        logits [B, K, S, card]."""
        clock = None
        if self.lm.config.beat_clock:
            rate = beats_per_frame(captions, self.frame_rate, strict=False)  # a mangled tempo: no clock, no crash
            clock = beat_clock(rate.to(inputs.device), first_frames.to(inputs.device))
            if self.training and self.tempo_text_dropout > 0:  # (no draw without it: other runs stay as they were)
                hidden = (torch.rand(len(captions)) < self.tempo_text_dropout) & (rate > 0)
                captions = [without_tempo(caption) if hide else caption
                            for caption, hide in zip(captions, hidden.tolist())]
        frozen = not self.conditioner.trainable
        with torch.autocast(inputs.device.type, enabled=False) if frozen else contextlib.nullcontext():
            condition, mask = self.conditioner(captions)
        return self.lm(inputs, condition, mask, clock, chroma)


def load_model(config: LMTrainConfig) -> MusicGen:
    """The starting model on the CPU (`starting_model`), with melody conditioning added if `add_melody` is set."""
    musicgen = starting_model(config)
    return musicgen if config.add_melody is None else add_melody(musicgen, config.add_melody)


def starting_model(config: LMTrainConfig) -> MusicGen:
    """A MusicGen checkpoint (init_from), there with another codec of the same K and cardinality if `codec` is set
    (the LM continues on the new codec's tokens), a new, zero beat clock if `add_beat_clock` is set, another text
    encoder if `text_encoder` is, and a tempo head if `add_tempo_head` is; or a new LM with a codec and a text
    encoder."""
    if config.init_from:
        pretrained = MusicGen.from_pretrained(config.init_from, device="cpu")
        if config.add_beat_clock and not pretrained.lm.config.beat_clock:
            pretrained.lm.add_beat_clock()
        if config.text_encoder and config.text_encoder != pretrained.conditioner.package:  # (on it already: kept)
            pretrained = with_text_encoder(pretrained, TextConditioner.load(config.text_encoder))
        if config.add_tempo_head:
            add_tempo_head(pretrained)
        if not config.codec:
            return pretrained
        return MusicGen(pretrained.config, pretrained.lm, pretrained.conditioner, load_training_codec(config))
    conditioner = TextConditioner.load(config.text_encoder)
    return MusicGen(config.model, LM(config.model.lm), conditioner, load_training_codec(config))


def load_training_codec(config: LMTrainConfig) -> Codec | InterleavedStereoCodec:
    """The codec of the `codec` folder (an interleaved stereo one where the folder records it), run on each channel of
    stereo audio, interleaved, with `stereo`."""
    codec = load_codec(config.codec)
    return InterleavedStereoCodec(codec) if config.stereo else codec


def prepare_caches(config: LMTrainConfig, codec: Codec | InterleavedStereoCodec,
                   env: DistributedEnv) -> tuple[TokenCache, TokenCache | None]:
    """Tokenize the train (and valid) manifests into cache_dir/{train,valid} where not done yet, all processes sharing
    the work; a split without a manifest uses the cache already there (valid: if any)."""
    cache_dir = Path(config.data.cache_dir or Path(config.run_dir) / "tokens")
    caches = []
    for split, manifest in (("train", config.data.manifest), ("valid", config.data.valid_manifest)):
        folder = cache_dir / split
        if manifest:
            build_token_cache(codec, read_manifest(manifest), folder,
                              config.data.shard_size, progress=env.is_main, rank=env.rank, world_size=env.world_size)
            barrier()
        elif split == "train" and not folder.is_dir():
            raise ValueError(f"data.manifest is empty and there is no token cache in {folder}; "
                             "set data.manifest to a JSONL manifest of captioned audio")
        cache = TokenCache(folder) if folder.is_dir() else None
        if cache is not None and env.is_main:
            warn_skipped(cache)
        caches.append(cache)
    return caches[0], caches[1]


def check_data(config: LMTrainConfig, musicgen: MusicGen, *caches: TokenCache | None) -> Pattern:
    """Check the caches against the LM and the codec; returns the pattern of one training window."""
    lm = musicgen.lm.config
    for cache in caches:
        if cache is None:
            continue
        if (cache.num_codebooks, cache.cardinality) != (lm.num_codebooks, lm.cardinality):
            raise ValueError(f"the token cache in {cache.folder} holds K={cache.num_codebooks} codebooks of "
                             f"{cache.cardinality} codes, the LM expects K={lm.num_codebooks} of {lm.cardinality}")
        if abs(cache.frame_rate - musicgen.frame_rate) > 1e-6 * musicgen.frame_rate:
            raise ValueError(f"the token cache in {cache.folder} has {cache.frame_rate} frames/s, "
                             f"the codec {musicgen.frame_rate}")
    frames = round(config.data.segment_seconds * musicgen.frame_rate)
    if frames < 1:
        raise ValueError(f"data.segment_seconds={config.data.segment_seconds} is shorter than one codec frame "
                         f"(1/{musicgen.frame_rate:g} s)")
    pattern = get_provider(musicgen.config.pattern.name, lm.num_codebooks, **musicgen.config.pattern.options).get_pattern(frames)
    if pattern.num_steps > lm.max_positions:
        raise ValueError(f"a window of {frames} frames takes {pattern.num_steps} steps with the "
                         f"{musicgen.config.pattern.name} pattern, more than the LM's max_positions={lm.max_positions}; "
                         "shorten data.segment_seconds or raise model.lm.max_positions")
    return pattern


def wrap_model(conditioned_lm: ConditionedLM, fsdp: bool, train_text_encoder: bool, env: DistributedEnv) -> nn.Module:
    """DistributedDataParallel, or FSDP (each LM block, the LM, and a trained text encoder sharded); as is in one process.

    A block's cross-attention key/value projection is a unit of its own: `LM.memory` runs it before the blocks do.
    """
    if not env.is_distributed:
        return conditioned_lm
    if not fsdp:
        return DistributedDataParallel(conditioned_lm)
    for block in conditioned_lm.lm.layers:
        fully_shard(block.cross_attention.key_value)
        fully_shard(block)
    fully_shard(conditioned_lm.lm)
    if train_text_encoder:
        fully_shard(conditioned_lm.conditioner.encoder)
    return conditioned_lm


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Within it, backward passes synchronise gradients across processes only when `enabled` (the last micro-batch)."""
    if isinstance(model, DistributedDataParallel) and not enabled:
        with model.no_sync():
            yield
        return
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_requires_gradient_sync(enabled, recurse=False)
    yield


def load_training_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Put the full weights and optimizer state of a checkpoint into the (possibly wrapped or sharded) model."""
    set_model_state_dict(model, state["model"], options=LOAD_FULL_STATE)
    set_optimizer_state_dict(model, optimizer, state["optimizer"], options=LOAD_FULL_STATE)


def write_checkpoint(run_dir: Path, step: int, config: LMTrainConfig, model: nn.Module, *,
                     optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                     env: DistributedEnv) -> None:
    """Gather full weights, optimizer state and every process's RNG state; the main process writes them atomically."""
    weights = get_model_state_dict(model, options=FULL_STATE)
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=FULL_STATE)
    rng_states = all_gather_object(rng_state())
    if env.is_main:
        state = {"model": weights, "optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "rng": rng_states,
                 "config": config_to_dict(config)}
        save_checkpoint(run_dir, step, state, keep_last=config.keep_checkpoints)
    barrier()


def export_model(config: LMTrainConfig, model: nn.Module, export_dir: Path, env: DistributedEnv,
                 *, tempo_examples: tuple[list[str], list[float]] | None = None) -> Path:
    """Write the trained model as a MusicGen checkpoint folder (main process): the starting model's codec, text encoder
    (with its trained weights when it was trained; a packaged one by name) and config, with the trained LM, its tempo
    head fitted on `tempo_examples` (captions without their stated tempo, BPMs) where it has one."""
    weights = get_model_state_dict(model, options=FULL_STATE)
    weights = {name: tensor for name, tensor in weights.items() if not name.startswith("lm.tempo_head.")}  # refitted
    if env.is_main:
        musicgen = load_model(config)
        musicgen.conditioner.set_trainable(config.train_text_encoder)  # trained weights are the model's own
        result = ConditionedLM(musicgen.lm, musicgen.conditioner, musicgen.frame_rate).load_state_dict(weights, strict=False)
        untrained = [name for name in result.missing_keys if not name.startswith("lm.tempo_head.")
                     and (name.startswith("lm.") or config.train_text_encoder)]
        if untrained or result.unexpected_keys:
            raise RuntimeError(f"the trained weights do not fit the model: missing {untrained[:5]}, "
                               f"unexpected {result.unexpected_keys[:5]}")
        if musicgen.lm.tempo_head is not None:
            error = fit_tempo_head(musicgen.lm.tempo_head, musicgen.conditioner.eval(), *tempo_examples,
                                   seed=config.seed)
            print(f"musicgen-train: tempo head fitted on {len(tempo_examples[0])} captions, log-BPM RMSE {error:.3f}",
                  flush=True)
        musicgen.save_pretrained(export_dir)
        print(f"musicgen-train: exported {export_dir}", flush=True)
    barrier()
    return export_dir
