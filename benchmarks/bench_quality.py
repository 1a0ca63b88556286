"""What int8 and int4 weights cost in likelihood: the LM's mean per-token log-likelihood of float32's own tokens.

A random-initialised transformers MusicGen of the chosen decoder shape (bench_generate.build_hf_directory) is loaded
in float32 and generates `frames` frames for each prompt (top-k 250, CFG 3, seeded). Each precision, loaded from the
same directory, then scores those tokens under teacher forcing (one `LM.forward` over the whole delay-pattern
sequence, conditioned rows only, no guidance): the mean log-probability of each generated token, in nats, and its
gap to float32's (negative: the quantized LM finds float32's tokens less likely), the mean KL divergence of its
next-token distributions from float32's (nats), and how often its most likely token at a step is float32's. int4 is scored at each of `--int4-groups` (inputs per scale and zero point; 64 is
what `quantize="int4"` uses). Speed and peak memory: benchmarks/bench_generate.py (`--sides ours ours-int8 ours-int4`).

    python benchmarks/bench_quality.py --shape small --frames 250 --prompts 4 --int4-groups 32 64 128
    python benchmarks/bench_quality.py --shape mid --frames 50 --prompts 2     # a quick check
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
import transformers
from bench_generate import SHAPES, build_hf_directory

from musicgen import MusicGen
from musicgen.train.loss import inputs_and_targets

PROMPTS = ["lo-fi piano with soft drums", "soft drums", "piano with drums", "lo-fi piano", "drums", "soft piano"]


@torch.inference_mode()
def score(model: MusicGen, codes: torch.Tensor, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """codes [B, K, T] -> (the LM's log-probabilities at the N scored steps [N, card], their targets [N])."""
    pattern = model.pattern_provider.get_pattern(codes.shape[-1])
    inputs, targets = inputs_and_targets(pattern, codes, model.lm.special_token)
    condition, mask = model.conditioner(prompts)
    logits = model.lm(inputs, condition, mask).float().log_softmax(-1)  # [B, K, S, card]
    scored = targets != model.lm.special_token
    return logits[scored], targets[scored]


def quantized_model(directory: Path, precision: str) -> MusicGen:
    """The model as `MusicGen.from_pretrained(quantize=...)` gives it; "int4-gN": int4 with groups of N inputs;
    "int4-gN-float32": the same 4-bit weights without torch's int4 kernel (dequantised, float32 activations)."""
    model = MusicGen.from_pretrained(directory, device="cpu")
    if precision == "int8":
        model.lm.quantize_int8()
        return model
    group_size = int(precision.removeprefix("int4-g").removesuffix("-float32"))
    model.lm.quantize_int4(group_size=group_size, kernel=not precision.endswith("-float32"))
    return model


def measure(directory: Path, args: argparse.Namespace) -> list[dict]:
    """One row per precision: mean log-likelihood per token, its gap to float32's, top-1 agreement with float32."""
    prompts = PROMPTS[:args.prompts]
    reference = MusicGen.from_pretrained(directory, device="cpu")
    _, codes = reference.generate(prompts, duration=args.frames / reference.frame_rate, use_sampling=True, top_k=250,
                                  cfg_coef=3.0, seed=0, return_codes=True)
    reference_logits, targets = score(reference, codes, prompts)
    del reference
    reference_token = reference_logits.gather(-1, targets[:, None])[:, 0]
    rows = [{"precision": "float32", "tokens": targets.numel(), "log_likelihood": round(reference_token.mean().item(), 5)}]
    precisions = ["int8"] + [f"int4-g{group}" for group in args.int4_groups]
    precisions += [f"int4-g{group}-float32" for group in args.int4_groups] if args.int4_float32 else []
    for precision in precisions:
        logits, _ = score(quantized_model(directory, precision), codes, prompts)
        token = logits.gather(-1, targets[:, None])[:, 0]
        gap = token - reference_token
        kl = (reference_logits.exp() * (reference_logits - logits)).sum(-1)
        rows.append({"precision": precision, "tokens": targets.numel(), "log_likelihood": round(token.mean().item(), 5),
                     "gap": round(gap.mean().item(), 5), "gap_std_error": round((gap.std() / gap.numel() ** 0.5).item(), 5),
                     "kl": round(kl.mean().item(), 5),
                     "top1_agreement": round((logits.argmax(-1) == reference_logits.argmax(-1)).float().mean().item(), 4)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="small", choices=list(SHAPES))
    parser.add_argument("--frames", type=int, default=250, help="frames float32 generates per prompt (250: 5 s at 50 Hz)")
    parser.add_argument("--prompts", type=int, default=4, choices=range(1, len(PROMPTS) + 1))
    parser.add_argument("--int4-groups", type=int, nargs="+", default=[64], help="int4 group sizes to score")
    parser.add_argument("--int4-float32", action="store_true",
                        help="also score each int4 group size without torch's int4 kernel (float32 activations): "
                             "what the 4-bit weights cost apart from the kernel's bfloat16 activations")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as directory:
        build_hf_directory(args.shape, Path(directory))
        rows = measure(Path(directory), args)
    print(json.dumps({"shape": args.shape, "frames": args.frames, "prompts": args.prompts}))
    print("\n| precision | log-likelihood per token (nats) | gap to float32 | KL from float32 | top-1 agreement |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        gap = f"{row['gap']:+.4f} ± {row['gap_std_error']:.4f}" if "gap" in row else "-"
        print(f"| {row['precision']} | {row['log_likelihood']:.4f} | {gap} | {row.get('kl', '-')} | "
              f"{row.get('top1_agreement', '-')} |")


if __name__ == "__main__":
    main()
