"""Train the MusicGen LM: `musicgen-train --config configs/lm/small.yaml [--resume] key=value ...`.

Runs as one process, or as many under `torchrun --nproc_per_node=N` (DistributedDataParallel, gloo
on CPU, NCCL on GPU; `fsdp=true` shards the model instead). The model starts from scratch (a codec
folder, a text encoder: a T5 folder or "minilm", the packaged pretrained one; LM sizes and a pattern) or from
a MusicGen checkpoint (`init_from`).
The frozen codec tokenizes the manifests once into token caches; each step then reads random
windows of tokens with their captions (condition and word dropout), for a melody-conditioned LM with the
chroma of the same span of each clip's melody stem (musicgen/train/melody.py), and the loss is the
cross-entropy of every codebook over the positions the pattern fills, averaged over codebooks.
The global batch is `data.batch_size` whatever the number of processes (gradient accumulation
over micro-batches where needed), and what a step reads depends only on the step, so a run
resumed with `--resume` from its newest checkpoint reaches the same weights as one never stopped.
At the end, `run_dir/model` holds an export that `MusicGen.from_pretrained` loads.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch

from infra.batches import StepBatchSampler
from infra.checkpoints import (
    claim_run_dir,
    latest_checkpoint,
    load_checkpoint,
    restore_rank_rng,
)
from infra.command import run_training
from infra.config import ConfigError, save_config
from infra.distributed import DistributedEnv, all_reduce_sum, seed_everything
from infra.schedule import warmup_cosine
from infra.train_log import JsonlLog, Progress
from patterns import Pattern

from .config import LMTrainConfig
from .loss import codebook_cross_entropy, inputs_and_targets
from .melody import melody_stems
from .segments import CaptionedSegments
from .setup import (
    ConditionedLM,
    check_data,
    export_model,
    gradient_sync,
    load_model,
    load_training_state,
    prepare_caches,
    wrap_model,
    write_checkpoint,
)
from .tempo import tempo_examples

PROGRAM = "musicgen-train"


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; the weights of that step were not updated."""


def main(argv: list[str] | None = None) -> None:
    run_training(train, LMTrainConfig, prog=PROGRAM, description=__doc__.split("\n\n")[0],
                 example_config="configs/lm/small.yaml",
                 example_overrides="steps=100 data.manifest=train.jsonl optim.lr=1e-3", argv=argv)


def train(config: LMTrainConfig, env: DistributedEnv, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Run (or continue) training; returns the export folder. A run_dir that holds a run is refused unless the
    run resumes it or overwrites it (`claim_run_dir`)."""
    run_dir = Path(config.run_dir)
    micro_batch = check_config(config, env)
    claim_run_dir(run_dir, env, resume=resume, overwrite=overwrite)

    # Model and data, checked against each other before any step runs.
    seed_everything(config.seed)
    musicgen = load_model(config)
    if config.data.melody_dropout and not musicgen.lm.config.melody:
        raise ConfigError("data.melody_dropout drops the melody of a melody-conditioned LM; this one has none "
                          "(give it melody conditioning with add_melody)")
    musicgen.conditioner.set_trainable(config.train_text_encoder)
    musicgen.to(env.device)
    train_cache, valid_cache = prepare_caches(config, musicgen.codec, env)
    pattern = check_data(config, musicgen, train_cache, valid_cache)
    tempo = tempo_examples(train_cache) if musicgen.lm.tempo_head is not None else None  # for the head, at export
    special = musicgen.lm.special_token
    dataset = CaptionedSegments(train_cache, pattern.timesteps, special, config.seed,
                                condition_dropout=config.data.condition_dropout,
                                word_dropout=config.data.word_dropout,
                                clip_start_probability=config.data.clip_start_probability,
                                melody=melody_stems(musicgen, train_cache), melody_dropout=config.data.melody_dropout)
    valid_set = (CaptionedSegments(valid_cache, pattern.timesteps, special, config.seed + 1,
                                   melody=melody_stems(musicgen, valid_cache))
                 if valid_cache is not None else None)

    # Distributed wrapper, optimizer, schedule; on resume they and this rank's RNG come back.
    conditioned_lm = ConditionedLM(musicgen.lm, musicgen.conditioner, musicgen.frame_rate,
                                   tempo_text_dropout=config.data.tempo_text_dropout).train()
    model = wrap_model(conditioned_lm, config.fsdp, config.train_text_encoder, env)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.optim.lr,
                                  betas=tuple(config.optim.betas), weight_decay=config.optim.weight_decay)
    scheduler = warmup_cosine(optimizer, config.optim.warmup_steps, config.steps, config.optim.min_lr_factor)
    start_step = 0
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint)
        start_step = state["step"]
        load_training_state(model, optimizer, state)
        scheduler.load_state_dict(state["scheduler"])
        restore_rank_rng(state["rng"], env, config.seed + start_step)
    else:
        seed_everything(config.seed, env.rank)
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        trained = sum(p.numel() for p in conditioned_lm.parameters() if p.requires_grad)
        print(f"musicgen-train: {trained:,} trained parameters, {len(train_cache)} clips, {pattern.timesteps} frames "
              f"a window ({musicgen.config.pattern.name} pattern, {pattern.num_steps} steps), "
              f"{env.world_size} process(es) on {env.device}, each {config.data.batch_size // env.world_size // micro_batch} "
              f"micro-batch(es) of {micro_batch} a step, "
              + (f"melody-conditioned ({musicgen.lm.config.chroma_frames} chroma rows), " if dataset.melody else "")
              + (f"resuming at step {start_step}" if checkpoint else "starting at step 0"), flush=True)

    sampler = StepBatchSampler(config.data.batch_size // env.world_size, start_step, config.steps, env.rank,
                               world_size=env.world_size)
    # The loader's own generator: creating its iterator must not draw from the global RNG (restored on resume).
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=config.data.num_workers,
                                         generator=torch.Generator().manual_seed(config.seed))
    bf16 = env.device.type == "cuda" or config.cpu_bf16
    autocast = torch.autocast(env.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    log = JsonlLog(run_dir / "log.jsonl", resume_step=start_step if checkpoint else None) if env.is_main else None
    progress = Progress(config.steps, initial=start_step, keys=("loss", "valid_loss"), enabled=env.is_main)

    for step, (codes, captions, first_frames, *melody) in enumerate(loader, start=start_step):
        started = time.perf_counter()
        chroma = melody[0].to(env.device) if melody else None
        inputs, targets = inputs_and_targets(pattern, codes.to(env.device), special)
        counts = all_reduce_sum((targets != special).sum(dim=(0, 2)).double()).clamp(min=1)

        # Forward and backward over the micro-batches; the loss is normalised by the global token counts,
        # so the gradient is that of the mean over the global batch whatever the split.
        optimizer.zero_grad(set_to_none=True)
        sums = torch.zeros_like(counts)
        for first in range(0, inputs.shape[0], micro_batch):
            part = slice(first, first + micro_batch)
            with gradient_sync(model, enabled=first + micro_batch >= inputs.shape[0]):
                with autocast:
                    logits = model(inputs[part], list(captions[part]), first_frames[part],
                                   None if chroma is None else chroma[part])
                micro_sums, _ = codebook_cross_entropy(logits, targets[part], special)
                ((micro_sums / counts).mean() * env.world_size).backward()
            sums += micro_sums.detach().double()
        cross_entropy = all_reduce_sum(sums) / counts
        grad_norm = clip_gradients(model, config.optim.grad_clip)
        if not (torch.isfinite(cross_entropy).all() and math.isfinite(grad_norm)):
            newest = latest_checkpoint(run_dir)
            raise NonFiniteLossError(
                f"non-finite loss at step {step + 1}: cross-entropy per codebook {cross_entropy.tolist()}, grad norm "
                f"{grad_norm}; this step's update was not applied and training stopped. Newest good checkpoint: "
                f"{newest or 'none yet'}; continue from it with --resume, e.g. with a lower optim.lr or optim.grad_clip")
        optimizer.step()
        scheduler.step()

        # Log (with validation when due), then checkpoint.
        done = step + 1
        elapsed = time.perf_counter() - started
        tokens = int(counts.sum().item())
        record = {"step": done, "loss": cross_entropy.mean().item(), "lr": scheduler.get_last_lr()[0],
                  "grad_norm": grad_norm, "tokens": tokens, "tokens_per_second": tokens / elapsed, "step_time": elapsed,
                  **per_codebook("", cross_entropy)}
        if valid_set is not None and (done == config.steps or (config.eval_every and done % config.eval_every == 0)):
            record.update(evaluate(conditioned_lm, valid_set, config.eval_items, micro_batch, pattern=pattern,
                                   special=special, env=env,
                                   autocast=autocast))
        if env.is_main:
            log.write(record)
            progress.update(record)
        if done % config.checkpoint_every == 0 or done == config.steps:
            write_checkpoint(run_dir, done, config, model, optimizer=optimizer, scheduler=scheduler, env=env)
    progress.close()
    if env.is_main:
        log.close()
    return export_model(config, model, run_dir / "model", env, tempo_examples=tempo)


def check_config(config: LMTrainConfig, env: DistributedEnv) -> int:
    """Errors a run would otherwise hit only later; returns the micro-batch size."""
    from_scratch = [name for name in ("codec", "text_encoder", "model") if getattr(config, name)]
    if config.init_from and config.model is not None:  # init_from takes a codec and a text encoder to move onto
        raise ConfigError(f"give either init_from (fine-tuning, optionally onto another codec or text encoder) or codec, "
                         f"text_encoder and model (from scratch), not both: init_from={config.init_from!r} and model are set")
    if not config.init_from and len(from_scratch) < 3:
        missing = sorted({"codec", "text_encoder", "model"} - set(from_scratch))
        raise ConfigError(f"a model from scratch needs codec, text_encoder and model; missing {', '.join(missing)} "
                         "(or give init_from, a MusicGen checkpoint folder, to fine-tune)")
    if config.stereo and not config.codec:
        raise ConfigError("stereo runs the mono codec of the `codec` folder on each channel: set codec too (with "
                          "init_from, the codec to move the LM onto)")
    if not 0.0 <= config.data.tempo_text_dropout <= 1.0:
        raise ConfigError(f"data.tempo_text_dropout must be in [0, 1], got {config.data.tempo_text_dropout}")
    if config.add_melody is not None:
        check_add_melody(config)
    for name, setting in (("add_beat_clock", "beat_clock"), ("add_tempo_head", "tempo_head")):
        if getattr(config, name) and not config.init_from:
            raise ConfigError(f"{name} gives a fine-tuned (init_from) LM a {setting.replace('_', ' ')}; "
                             f"a model from scratch sets model.lm.{setting}: true instead")
    if config.steps < 1 or config.checkpoint_every < 1 or config.eval_every < 0 or config.eval_items < 1:
        raise ConfigError(f"expected steps, checkpoint_every, eval_items >= 1 and eval_every >= 0, got {config.steps}, "
                         f"{config.checkpoint_every}, {config.eval_items} and {config.eval_every}")
    batch = config.data.batch_size
    if batch < 1 or batch % env.world_size:
        raise ConfigError(f"data.batch_size={batch} must be a positive multiple of the number of processes ({env.world_size})")
    per_rank = batch // env.world_size
    micro_batch = config.data.micro_batch_size or per_rank
    if micro_batch < 1 or per_rank % micro_batch:
        raise ConfigError(f"data.micro_batch_size={micro_batch} must divide the batch of each process "
                         f"({batch} / {env.world_size} processes = {per_rank})")
    return micro_batch


def check_add_melody(config: LMTrainConfig) -> None:
    """add_melody's settings are whole numbers (chroma_frames may be 0), for a model without melody conditioning."""
    settings = config.add_melody
    for name, least in (("chroma_bins", 1), ("chroma_frames", 0), ("n_fft", 1), ("hop_length", 1)):
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"add_melody.{name} must be an integer >= {least}, got {value!r}")
    if config.model is not None and config.model.lm.melody:
        raise ConfigError("the model is melody-conditioned already (model.lm.chroma_bins > 0): set that or "
                         "add_melody, not both")


def clip_gradients(model: torch.nn.Module, max_norm: float) -> float:
    """Clip to `max_norm` when it is positive; the gradient norm before clipping (over all processes)."""
    parameters = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm if max_norm > 0 else math.inf)
    return (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item()


def per_codebook(prefix: str, cross_entropy: torch.Tensor) -> dict[str, float]:
    """{"ce/k": ..., "ppl/k": ...} of a [K] cross-entropy, keys prefixed (e.g. "valid_")."""
    values = {}
    for k, value in enumerate(cross_entropy.tolist()):
        values[f"{prefix}ce/{k}"] = value
        values[f"{prefix}ppl/{k}"] = math.exp(min(value, 80.0))
    return values


@torch.no_grad()
def evaluate(conditioned_lm: ConditionedLM, valid_set: CaptionedSegments, items: int, micro_batch: int,
             *, pattern: Pattern, special: int, env: DistributedEnv,
             autocast: contextlib.AbstractContextManager) -> dict[str, float]:
    """Validation loss over the first `items` windows of the held-out cache (every process takes an equal share)."""
    conditioned_lm.eval()
    per_rank = math.ceil(items / env.world_size)
    indices = range(env.rank * per_rank, (env.rank + 1) * per_rank)
    sums = torch.zeros(pattern.num_codebooks, dtype=torch.float64, device=env.device)
    counts = torch.zeros_like(sums)
    for first in range(0, per_rank, micro_batch):
        codes, captions, first_frames, *melody = zip(*(valid_set[index] for index in indices[first:first + micro_batch]))
        inputs, targets = inputs_and_targets(pattern, torch.stack(codes).to(env.device), special)
        chroma = torch.stack(melody[0]).to(env.device) if melody else None
        with autocast:
            logits = conditioned_lm(inputs, list(captions), torch.tensor(first_frames), chroma)
        micro_sums, micro_counts = codebook_cross_entropy(logits, targets, special)
        sums += micro_sums.double()
        counts += micro_counts.double()
    conditioned_lm.train()
    cross_entropy = all_reduce_sum(sums) / all_reduce_sum(counts).clamp(min=1)
    return {"valid_loss": cross_entropy.mean().item(), **per_codebook("valid_", cross_entropy)}
