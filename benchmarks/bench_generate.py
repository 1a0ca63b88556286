"""Generation speed: musicgen-lite's `MusicGen.generate` against transformers' MusicGen on identical weights.

A random-initialised MusicgenForConditionalGeneration (T5-base-shaped text encoder, the 32 kHz EnCodec
of musicgen-small) is saved in the Hugging Face layout; both sides load that directory and generate
the same number of frames for the same prompt with top-k 250 sampling and CFG 3, alternately
(A B A B ...). A step is one LM call: frames + K - 1 of them under the delay pattern.

    python benchmarks/bench_generate.py                      # mid (8 x 512) and small (24 x 1024) shapes
    python benchmarks/bench_generate.py --shapes mid --frames 100 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import string
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import (EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration,
                          T5Config, T5Tokenizer)

from musicgen import MusicGen

SHAPES = {  # decoder sizes: layers, width, heads, ffn
    "mid": dict(num_hidden_layers=8, hidden_size=512, num_attention_heads=8, ffn_dim=2048),
    "small": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, ffn_dim=4096),
}
PROMPT = "lo-fi piano with soft drums"


def build_hf_directory(shape: str, path: Path) -> None:
    """Save a random-initialised MusicGen of the given decoder shape and a small T5 tokenizer to path."""
    torch.manual_seed(0)
    t5 = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    encodec = EncodecConfig(sampling_rate=32000, audio_channels=1, num_filters=64, upsampling_ratios=[8, 5, 4, 4],
                            codebook_size=2048, hidden_size=128, target_bandwidths=[2.2], use_causal_conv=False,
                            norm_type="weight_norm", normalize=False, num_lstm_layers=2, compress=2,
                            residual_kernel_size=3, num_residual_layers=1, kernel_size=7, last_kernel_size=7,
                            dilation_growth_rate=2, pad_mode="reflect", trim_right_ratio=1.0, chunk_length_s=None,
                            overlap=None, use_conv_shortcut=False)
    decoder = MusicgenDecoderConfig(vocab_size=2048, num_codebooks=4, max_position_embeddings=2048,
                                    activation_function="gelu", pad_token_id=2048, bos_token_id=2048, **SHAPES[shape])
    config = MusicgenConfig(text_encoder=t5.to_dict(), audio_encoder=encodec.to_dict(), decoder=decoder.to_dict())
    MusicgenForConditionalGeneration(config).eval().save_pretrained(path)
    words = PROMPT.replace("-", " ").split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(letter, -3.0) for letter in string.ascii_lowercase + "-"] + [("▁" + word, -1.0) for word in words]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(path)


def time_hf(model, tokenizer, frames: int, num_codebooks: int) -> float:
    inputs = tokenizer([PROMPT], return_tensors="pt")
    start = time.perf_counter()
    model.generate(**inputs, do_sample=True, top_k=250, guidance_scale=3.0, max_new_tokens=frames + num_codebooks - 1)
    return time.perf_counter() - start


def time_ours(model: MusicGen, frames: int, seed: int) -> float:
    start = time.perf_counter()
    model.generate([PROMPT], duration=frames / model.frame_rate, use_sampling=True, top_k=250, cfg_coef=3.0, seed=seed)
    return time.perf_counter() - start


def bench_shape(shape: str, frames: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        build_hf_directory(shape, Path(directory))
        reference = MusicgenForConditionalGeneration.from_pretrained(directory).eval()
        tokenizer = T5Tokenizer.from_pretrained(directory)
        ours = MusicGen.from_pretrained(directory, device="cpu")
    num_codebooks = ours.lm.config.num_codebooks
    steps = frames + num_codebooks - 1
    with torch.inference_mode():
        time_hf(reference, tokenizer, 4, num_codebooks)
        time_ours(ours, 4, seed=0)
        hf_seconds, our_seconds = [], []
        for index in range(rounds):
            hf_seconds.append(time_hf(reference, tokenizer, frames, num_codebooks))
            our_seconds.append(time_ours(ours, frames, seed=index))
    hf_rate, our_rate = steps / statistics.median(hf_seconds), steps / statistics.median(our_seconds)
    return {"shape": shape, "frames": frames, "steps": steps, "threads": torch.get_num_threads(),
            "transformers_seconds": [round(s, 3) for s in hf_seconds], "ours_seconds": [round(s, 3) for s in our_seconds],
            "transformers_steps_per_s": round(hf_rate, 2), "ours_steps_per_s": round(our_rate, 2),
            "ratio": round(our_rate / hf_rate, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--frames", type=int, default=100, help="frames to generate per call")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds; the median time of each side is reported")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    for shape in args.shapes:
        print(json.dumps(bench_shape(shape, args.frames, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
