"""codec-train's settings (YAML recipes in configs/codec/): the bottom floor of the training wing."""
from __future__ import annotations

from dataclasses import dataclass, field

from codec.config import CodecConfig


@dataclass
class CodecDataConfig:
    path: str = ""                       # a folder of audio files or a .jsonl manifest of {"path": ...}
    segment_seconds: float = 1.0
    batch_size: int = 8                  # global: split evenly over the processes
    num_workers: int = 0


@dataclass
class CodecOptimConfig:
    lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_factor: float = 1.0           # 1.0: constant after warmup; below 1: cosine decay to lr * factor
    grad_clip: float = 0.0               # 0: no clipping
    discriminator_lr: float = 3e-4


@dataclass
class LossConfig:
    l1: float = 0.1
    mel: float = 1.0
    adversarial: float = 3.0
    feature: float = 3.0                 # (the commitment loss is weighted by model.commitment_weight)
    balancer: bool = True                # False: a plain weighted sum of the losses
    balancer_decay: float = 0.999
    mel_n_ffts: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])
    mel_n_mels: int = 64


@dataclass
class DiscriminatorConfig:
    n_ffts: list[int] = field(default_factory=lambda: [1024, 2048, 512])
    filters: int = 32
    start_step: int = 0                  # adversarial losses join (and the discriminator trains) from this step
    lead_steps: int = 0                  # then only the discriminator takes gradient steps this long (the codec waits)


@dataclass
class CodecTrainConfig:
    model: CodecConfig = field(default_factory=CodecConfig)
    data: CodecDataConfig = field(default_factory=CodecDataConfig)
    optim: CodecOptimConfig = field(default_factory=CodecOptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    steps: int = 1000
    seed: int = 0
    run_dir: str = "runs/codec"
    init_from: str = ""                  # fine-tuning: start from this Codec.from_pretrained folder's weights
    train_decoder_only: bool = False     # with init_from: freeze the encoder and codebooks (the codes stay the same)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    device: str = "auto"                 # auto, cpu or cuda
    threads: int = 0                     # CPU threads per process; 0: torch's default
