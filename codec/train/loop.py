"""Train the codec: `codec-train --config configs/codec/small.yaml [--resume] key=value ...`.

Runs as one process, or as many under `torchrun --nproc_per_node=N` (DistributedDataParallel,
gloo on CPU, NCCL on GPU). Each step: the codec reconstructs a batch of random segments; the L1,
multi-scale mel, adversarial and feature-matching losses are balanced (or weighted) into one
gradient, plus the quantizer's commitment loss; then the discriminator takes a hinge-loss step.
Every `checkpoint_every` steps an atomic checkpoint; `--resume` continues from the newest one and
reaches the same weights as a run never interrupted; `init_from=DIR` instead starts a new run from an
exported codec's weights, and with `train_decoder_only=true` only its decoder learns: the encoder and
codebooks stay frozen, so the codes, and an LM trained on them, stay valid (with `model.decoder=istft`,
a new inverse-STFT decoder learns them). At the end, `run_dir/model` holds an export that
`Codec.from_pretrained` loads.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from codec import Codec
from infra.batches import StepBatchSampler
from infra.checkpoints import (
    claim_run_dir,
    latest_checkpoint,
    load_checkpoint,
    restore_rank_rng,
    rng_state,
    save_checkpoint,
)
from infra.command import run_training
from infra.config import ConfigError, config_to_dict, save_config
from infra.distributed import DistributedEnv, all_gather_object, barrier, seed_everything
from infra.manifest import list_audio_paths, probe_audio
from infra.schedule import warmup_cosine
from infra.train_log import JsonlLog, Progress

from .balancer import LossBalancer
from .config import CodecTrainConfig
from .data import SegmentDataset
from .discriminator import MultiScaleSTFTDiscriminator
from .losses import MultiScaleMelLoss, discriminator_hinge_loss, feature_matching_loss, generator_hinge_loss

PROGRAM = "codec-train"
ADVERSARIAL_LOSSES = ("adversarial", "feature")
DECODER_FIELDS = ("decoder", "istft_width", "istft_layers")  # what a decoder-only run may change


def main(argv: list[str] | None = None) -> None:
    run_training(train, CodecTrainConfig, prog=PROGRAM, description=__doc__.split("\n\n")[0],
                 example_config="configs/codec/small.yaml",
                 example_overrides="steps=100 data.path=/audio optim.lr=1e-3", argv=argv)


def train(config: CodecTrainConfig, env: DistributedEnv, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Run (or continue) training; returns the export folder. A run_dir that holds a run is refused unless the
    run resumes it or overwrites it (`claim_run_dir`)."""
    run_dir = Path(config.run_dir)
    uses_adversary = any(getattr(config.loss, name) > 0 for name in ADVERSARIAL_LOSSES)

    # Data and model, checked before any step runs.
    seed_everything(config.seed)
    codec = Codec(config.model).to(env.device)
    if config.train_decoder_only:
        codec.encoder.requires_grad_(False)
        codec.quantizer.requires_grad_(False)
    segment_samples = check_config(config, codec, env, uses_adversary)
    claim_run_dir(run_dir, env, resume=resume, overwrite=overwrite)
    entries = probe_audio(list_audio_paths(config.data.path))
    dataset = SegmentDataset(entries, codec.sample_rate, codec.channels, segment_samples, seed=config.seed)
    discriminator = (MultiScaleSTFTDiscriminator(codec.channels, config.discriminator.n_ffts,
                                                 filters=config.discriminator.filters).to(env.device)
                     if uses_adversary else None)
    mel_loss = MultiScaleMelLoss(codec.sample_rate, config.loss.mel_n_ffts, config.loss.mel_n_mels).to(env.device)

    # Optimizers, schedules, balancer; on resume all of them and this rank's RNG come back.
    weights = {"l1": config.loss.l1, "mel": config.loss.mel, "adversarial": config.loss.adversarial,
               "feature": config.loss.feature}
    parts = TrainingParts.create(codec, discriminator, weights, config)
    start_step = 0
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint)  # on the CPU: RNG states must stay there; load_state_dict moves the rest
        check_same_model(state["config"]["model"], config_to_dict(config)["model"], f"resume from {checkpoint}")
        start_step = state["step"]
        parts.load_state_dict(state)
        restore_rank_rng(state["rng"], env, config.seed + start_step, parts.generators())
    else:
        if config.init_from:  # (a resumed run has these weights, and more, in its checkpoint)
            load_pretrained_weights(codec, Path(config.init_from), config.train_decoder_only)
        seed_everything(config.seed, env.rank)
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        print(f"codec-train: {sum(p.numel() for p in codec.parameters()):,} parameters, {len(entries)} files, "
              f"{env.world_size} process(es) on {env.device}, "
              + (f"resuming at step {start_step}" if checkpoint else "starting at step 0"), flush=True)

    # Distributed wrappers and the data stream of this rank from the start step on.
    model = DistributedDataParallel(codec) if env.is_distributed else codec
    disc_model = DistributedDataParallel(discriminator) if discriminator is not None and env.is_distributed else discriminator
    sampler = StepBatchSampler(config.data.batch_size // env.world_size, start_step, config.steps,
                               env.rank, world_size=env.world_size)
    # (segments are seeded by their index; the loader's own generator keeps the global RNG untouched)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=config.data.num_workers,
                                         generator=torch.Generator().manual_seed(config.seed))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if env.device.type == "cuda"
                else contextlib.nullcontext())
    log = JsonlLog(run_dir / "log.jsonl", resume_step=start_step if checkpoint else None) if env.is_main else None
    progress = Progress(config.steps, initial=start_step, keys=("mel", "l1", "commitment", "discriminator"),
                        enabled=env.is_main)

    codec.train()
    if config.train_decoder_only:  # no EMA updates or dead-code replacement: every input keeps its codes
        codec.encoder.eval()
        codec.quantizer.eval()
    last_step_end = time.perf_counter()
    for step, wav in enumerate(loader, start=start_step):
        data_time = time.perf_counter() - last_step_end
        wav = wav.to(env.device, non_blocking=True)
        adversarial_on = discriminator is not None and step >= config.discriminator.start_step
        codec_learns = not adversarial_on or step >= config.discriminator.start_step + config.discriminator.lead_steps

        # Codec step: one backward through the balanced (or weighted) losses plus commitment.
        with torch.set_grad_enabled(codec_learns):
            with autocast:
                out = model(wav)
            recon = out.audio[..., : wav.shape[-1]]
            losses = {"l1": F.l1_loss(recon.float(), wav), "mel": mel_loss(recon, wav)}
            if adversarial_on:
                losses.update(generator_losses(discriminator, recon, wav, autocast))
        grad_norm = 0.0
        if codec_learns:
            active = {name: loss for name, loss in losses.items() if weights[name] > 0}
            if parts.balancer is not None:
                total = parts.balancer.surrogate_loss(active, recon)
            else:
                total = sum(weights[name] * loss for name, loss in active.items())
            total = total + out.commitment_loss
            parts.optimizer.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = clip_gradients(codec, config.optim.grad_clip)
            parts.optimizer.step()
            parts.scheduler.step()

        # Discriminator step: hinge loss on real vs. the (detached) reconstruction.
        if adversarial_on:
            with autocast:
                logits, _ = disc_model(torch.cat([wav, recon.detach()]))
            real_logits, fake_logits = zip(*(scale.chunk(2) for scale in logits))
            disc_loss = discriminator_hinge_loss(list(real_logits), list(fake_logits))
            parts.disc_optimizer.zero_grad(set_to_none=True)
            disc_loss.backward()
            parts.disc_optimizer.step()
            parts.disc_scheduler.step()
            losses["discriminator"] = disc_loss

        # Log, then checkpoint.
        done = step + 1
        if env.is_main:
            record = {"step": done, **{name: loss.item() for name, loss in losses.items()},
                      "commitment": out.commitment_loss.item(), "grad_norm": grad_norm,
                      "lr": parts.scheduler.get_last_lr()[0], **out.metrics, "data_time": data_time,
                      "step_time": time.perf_counter() - last_step_end}
            log.write(record)
            progress.update(record)
        if done % config.checkpoint_every == 0 or done == config.steps:
            write_checkpoint(run_dir, done, config, parts, env=env)
        last_step_end = time.perf_counter()
    progress.close()
    export_dir = run_dir / "model"
    if env.is_main:
        log.close()
        codec.eval()
        codec.save_pretrained(export_dir)
        print(f"codec-train: exported {export_dir}", flush=True)
    barrier()
    return export_dir


def check_config(config: CodecTrainConfig, codec: Codec, env: DistributedEnv, uses_adversary: bool) -> int:
    """Errors a run would otherwise hit only later; returns the segment length in samples."""
    if not config.data.path:
        raise ConfigError("data.path is required: a folder of audio files or a .jsonl manifest")
    segment_samples = round(config.data.segment_seconds * codec.sample_rate)
    if segment_samples < codec.hop_length:
        raise ConfigError(f"data.segment_seconds={config.data.segment_seconds} gives {segment_samples} samples, "
                         f"shorter than one hop of the codec ({codec.hop_length} samples at {codec.sample_rate} Hz)")
    if uses_adversary and segment_samples < max(config.discriminator.n_ffts):
        raise ConfigError(f"data.segment_seconds={config.data.segment_seconds} gives {segment_samples} samples, fewer "
                         f"than the discriminator's largest n_fft ({max(config.discriminator.n_ffts)})")
    if config.data.batch_size < 1:
        raise ConfigError(f"data.batch_size must be at least 1, got {config.data.batch_size}")
    if config.data.batch_size % env.world_size != 0:
        raise ConfigError(f"data.batch_size={config.data.batch_size} must be a multiple of the "
                         f"number of processes ({env.world_size})")
    if config.train_decoder_only and not config.init_from:
        raise ConfigError("train_decoder_only=true needs init_from: a trained codec whose encoder and codebooks stay as they are")
    if config.steps < 1 or config.checkpoint_every < 1:
        raise ConfigError(f"steps and checkpoint_every must be >= 1, got {config.steps} and {config.checkpoint_every}")
    return segment_samples


def check_same_model(saved: dict[str, Any], current: dict[str, Any], action: str) -> None:
    """A run resumes, or starts from pretrained weights, only with the model config they were saved with."""
    changed = sorted(key for key in saved.keys() | current.keys() if saved.get(key) != current.get(key))
    if changed:
        raise ValueError(f"cannot {action}: model config differs in {', '.join(changed)} "
                         f"(saved {[saved.get(key) for key in changed]}, now {[current.get(key) for key in changed]})")


def load_pretrained_weights(codec: Codec, directory: Path, train_decoder_only: bool) -> None:
    """Fine-tuning: copy every tensor of an exported codec of the same model config, codebooks and their
    EMA statistics included (so k-means does not run again); the optimizer and schedule start afresh.
    Training the decoder alone may also swap it for another (`model.decoder`, `model.istft_*`): then only
    the encoder and codebooks are copied, and the new decoder starts from scratch on their codes."""
    pretrained = Codec.from_pretrained(directory)
    saved, current = config_to_dict(pretrained.config), config_to_dict(codec.config)
    new_decoder = [name for name in DECODER_FIELDS if saved[name] != current[name]]
    if new_decoder and not train_decoder_only:
        raise ValueError(f"cannot start from {directory} with another decoder ({', '.join(new_decoder)} differ): "
                         f"only train_decoder_only=true trains a new decoder on a trained codec's codes")
    for name in new_decoder:
        del saved[name], current[name]
    check_same_model(saved, current, f"start from {directory}")
    if new_decoder:
        codec.encoder.load_state_dict(pretrained.encoder.state_dict())
        codec.quantizer.load_state_dict(pretrained.quantizer.state_dict())
    else:
        codec.load_state_dict(pretrained.state_dict())


@dataclass
class TrainingParts:
    """Everything a checkpoint holds besides RNG states: models, optimizers, schedules, balancer."""
    codec: Codec
    discriminator: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    disc_optimizer: torch.optim.Optimizer | None
    disc_scheduler: torch.optim.lr_scheduler.LRScheduler | None
    balancer: LossBalancer | None

    @classmethod
    def create(cls, codec: Codec, discriminator: nn.Module | None, weights: dict[str, float],
               config: CodecTrainConfig) -> TrainingParts:
        optimizer, scheduler = make_optimizer(codec, config.optim.lr, config)
        disc_optimizer, disc_scheduler = (make_optimizer(discriminator, config.optim.discriminator_lr, config)
                                          if discriminator is not None else (None, None))
        balancer = LossBalancer(weights, ema_decay=config.loss.balancer_decay) if config.loss.balancer else None
        return cls(codec, discriminator, optimizer, scheduler, disc_optimizer, disc_scheduler, balancer)

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).state_dict() for name in self.stateful()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.stateful():
            getattr(self, name).load_state_dict(state[name])

    def generators(self) -> dict[str, torch.Generator]:
        """Random generators the modules own (their states go with the RNG states of each rank)."""
        return {"quantizer": self.codec.quantizer.generator}

    def stateful(self) -> list[str]:
        return [item.name for item in fields(self) if getattr(self, item.name) is not None]


def make_optimizer(module: nn.Module, lr: float, config: CodecTrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    trainable = [parameter for parameter in module.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, betas=tuple(config.optim.betas), weight_decay=config.optim.weight_decay)
    return optimizer, warmup_cosine(optimizer, config.optim.warmup_steps, config.steps, config.optim.min_lr_factor)


def generator_losses(discriminator: nn.Module, recon: torch.Tensor, wav: torch.Tensor,
                     autocast: contextlib.AbstractContextManager) -> dict[str, torch.Tensor]:
    """Adversarial and feature-matching losses of the reconstruction; the discriminator stays untouched."""
    discriminator.requires_grad_(False)
    with autocast:
        logits, features = discriminator(torch.cat([recon, wav]))
    discriminator.requires_grad_(True)
    fake_logits = [scale.chunk(2)[0] for scale in logits]
    fake_features = [[layer.chunk(2)[0] for layer in scale] for scale in features]
    real_features = [[layer.chunk(2)[1] for layer in scale] for scale in features]
    return {"adversarial": generator_hinge_loss(fake_logits),
            "feature": feature_matching_loss(real_features, fake_features)}


def clip_gradients(module: nn.Module, max_norm: float) -> float:
    """Clip to `max_norm` when it is positive; the gradient norm before clipping (0.0 when not clipping)."""
    if max_norm <= 0:
        return 0.0
    return nn.utils.clip_grad_norm_(module.parameters(), max_norm).item()


def write_checkpoint(run_dir: Path, step: int, config: CodecTrainConfig, parts: TrainingParts, *,
                     env: DistributedEnv) -> None:
    """Gather every rank's RNG state; the main process writes the checkpoint atomically."""
    rng_states = all_gather_object(rng_state(parts.generators()))
    if env.is_main:
        state = {**parts.state_dict(), "rng": rng_states, "config": config_to_dict(config),
                 "data": {"seed": config.seed, "next_step": step}}
        save_checkpoint(run_dir, step, state, keep_last=config.keep_checkpoints)
    barrier()
