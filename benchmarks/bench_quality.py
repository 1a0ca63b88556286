"""What int8 and int4 weights cost in likelihood: how far each moves the distributions float32's tokens are drawn from.

float32 generates `frames` frames for each prompt (top-k 250, CFG 3, seeded). Each precision then scores those tokens
the way generation computes them: one prompt at a time through the LM's prefill and one-token decode steps (2 rows:
the prompt's and guidance's null condition, beat clock and inferred tempo included), each step's guided logits
uncond + 3 (cond - uncond) taken as the distribution a sample is drawn from. Reported per scored token: the mean
log-probability of float32's token (nats) and its gap to float32's (negative: the quantized model finds it less
likely), the mean KL divergence of its distribution from float32's (nats), and how often its most likely token is
float32's. Scoring step by step matters for int8: its kernel rounds each call's input to 7 bits with one scale over
the whole input, 2 rows in generation, every row of the batch in a teacher-forced forward.

Two sources of weights:
- the default: a random-initialised transformers MusicGen of the chosen decoder shape (bench_generate.build_hf_directory)
  and a few short prompts; a random LM's distributions are near uniform, so this measures the kernels' rounding;
- `--model DIR`: a trained model in this project's layout (e.g. checkpoints/default), scored on the 80 choosing
  paraphrase and word-tempo prompts (evaluation/paraphrases.py), the prompts models are chosen on.

Precisions: "int8" and "int4" as `MusicGen.from_pretrained(quantize=...)` gives them (int4 runs the text encoder in
bfloat16); "int4-gN" the LM alone in int4 with groups of N inputs (`--int4-groups`), "-float32" the same 4-bit
weights without torch's int4 kernel (dequantised, float32 activations; `--int4-float32`). Speed and peak memory:
benchmarks/bench_generate.py (`--sides ours ours-int8 ours-int4`).

    python benchmarks/bench_quality.py --shape small --frames 250 --prompts 4 --int4-groups 32 128
    python benchmarks/bench_quality.py --model checkpoints/default --frames 150 --threads 1
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
import transformers
from bench_generate import SHAPES, build_hf_directory

from evaluation.paraphrases import CHOOSING, paraphrases, word_tempo_prompts
from musicgen import MusicGen
from musicgen.beat_clock import beat_clock, beats_per_frame, with_inferred_tempo
from musicgen.generate import decode_one_token, first_generated_step, prefill, with_null_rows

PROMPTS = ["lo-fi piano with soft drums", "soft drums", "piano with drums", "lo-fi piano", "drums", "soft piano"]
CFG_COEF = 3.0


@torch.inference_mode()
def guided_log_probs(model: MusicGen, codes: torch.Tensor, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """codes [B, K, T] generated for prompts -> (the guided log-probabilities at every sampled step [N, card], the
    tokens sampled there [N]), teacher-forced through prefill and decode one prompt at a time, as generation runs."""
    lm, pattern = model.lm, model.pattern_provider.get_pattern(codes.shape[-1])
    start = first_generated_step(pattern, 0)
    log_probs, tokens = [], []
    for row, prompt in enumerate(prompts):
        condition, mask = model.conditioner([prompt])
        tempo = with_inferred_tempo(beats_per_frame([prompt], model.frame_rate), lm.inferred_bpm(condition, mask),
                                    model.frame_rate)
        clock = beat_clock(tempo) if lm.config.beat_clock else None
        memory = lm.memory(*with_null_rows(condition, mask, clock))
        sequence, valid = pattern.build_sequence(codes[row:row + 1], lm.special_token)
        total = sequence.shape[-1]
        lm.setup_caches(2, total - 1, memory.prefix_length)
        try:
            logits = prefill(lm, sequence[..., :start], memory, CFG_COEF)
            for step in range(start, total):
                sampled = valid[:, step]
                log_probs.append(logits[0, sampled].float().log_softmax(-1))
                tokens.append(sequence[0, sampled, step])
                if step + 1 < total:
                    logits = decode_one_token(lm, sequence[..., step:step + 1], torch.tensor([step]), memory,
                                              cfg_coef=CFG_COEF, length=step + 1)
        finally:
            lm.clear_caches()
    return torch.cat(log_probs), torch.cat(tokens)


def quantized_model(directory: Path, precision: str) -> MusicGen:
    """The model of one precision (see the module docstring)."""
    if precision in ("int8", "int4"):
        return MusicGen.from_pretrained(directory, device="cpu", quantize=precision)
    model = MusicGen.from_pretrained(directory, device="cpu")
    group_size = int(precision.removeprefix("int4-g").removesuffix("-float32"))
    model.lm.quantize_int4(group_size=group_size, kernel=not precision.endswith("-float32"))
    return model


def measure(directory: Path, prompts: list[str], args: argparse.Namespace) -> list[dict]:
    """One row per precision: mean log-likelihood per token, its gap to float32's, KL, top-1 agreement with float32."""
    reference = MusicGen.from_pretrained(directory, device="cpu")
    _, codes = reference.generate(prompts, duration=args.frames / reference.frame_rate, use_sampling=True, top_k=250,
                                  cfg_coef=CFG_COEF, seed=0, return_codes=True)
    reference_log_probs, tokens = guided_log_probs(reference, codes, prompts)
    del reference
    reference_token = reference_log_probs.gather(-1, tokens[:, None])[:, 0]
    rows = [{"precision": "float32", "tokens": tokens.numel(),
             "log_likelihood": round(reference_token.mean().item(), 5)}]
    precisions = ["int8", "int4"] + [f"int4-g{group}" for group in args.int4_groups]
    precisions += [f"int4-g{group}-float32" for group in args.int4_groups] if args.int4_float32 else []
    for precision in precisions:
        log_probs, _ = guided_log_probs(quantized_model(directory, precision), codes, prompts)
        token = log_probs.gather(-1, tokens[:, None])[:, 0]
        gap = token - reference_token
        kl = (reference_log_probs.exp() * (reference_log_probs - log_probs)).sum(-1)
        rows.append({"precision": precision, "tokens": tokens.numel(), "log_likelihood": round(token.mean().item(), 5),
                     "gap": round(gap.mean().item(), 5), "gap_std_error": round((gap.std() / gap.numel() ** 0.5).item(), 5),
                     "kl": round(kl.mean().item(), 5),
                     "top1_agreement": round((log_probs.argmax(-1) == reference_log_probs.argmax(-1)).float().mean().item(), 4)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a trained model's directory (default: a random-initialised one)")
    parser.add_argument("--shape", default="small", choices=list(SHAPES), help="the random model's decoder shape")
    parser.add_argument("--frames", type=int, default=250, help="frames float32 generates per prompt (250: 5 s at 50 Hz)")
    parser.add_argument("--prompts", type=int, default=4, choices=range(1, len(PROMPTS) + 1),
                        help="how many of the random model's prompts")
    parser.add_argument("--int4-groups", type=int, nargs="*", default=[],
                        help="int4 group sizes to score the LM at, beside quantize='int4' (groups of 64)")
    parser.add_argument("--int4-float32", action="store_true",
                        help="also score each int4 group size without torch's int4 kernel (float32 activations): "
                             "what the 4-bit weights cost apart from the kernel's bfloat16 activations")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.model is not None and not args.model.is_dir():
        parser.error(f"--model: no model directory at {args.model}")
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    if args.model is not None:
        prompts = [paraphrase.prompt for paraphrase in paraphrases(CHOOSING) + word_tempo_prompts(CHOOSING)]
        rows = measure(args.model, prompts, args)
    else:
        with tempfile.TemporaryDirectory() as directory:
            build_hf_directory(args.shape, Path(directory))
            rows = measure(Path(directory), PROMPTS[:args.prompts], args)
    print(json.dumps({"model": str(args.model or f"random {args.shape}"), "frames": args.frames, "cfg_coef": CFG_COEF}))
    print("\n| precision | log-likelihood per token (nats) | gap to float32 | KL from float32 | top-1 agreement |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        gap = f"{row['gap']:+.4f} ± {row['gap_std_error']:.4f}" if "gap" in row else "-"
        print(f"| {row['precision']} | {row['log_likelihood']:.4f} | {gap} | {row.get('kl', '-')} | "
              f"{row.get('top1_agreement', '-')} |")


if __name__ == "__main__":
    main()
