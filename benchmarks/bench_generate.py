"""Generation speed: musicgen-lite's `MusicGen.generate` against transformers' MusicGen on identical weights.

A random-initialised MusicgenForConditionalGeneration (T5-base-shaped text encoder, the 32 kHz EnCodec
of musicgen-small) is saved in the Hugging Face layout; transformers and this project (float32, and
with int8 weights) load that directory and generate the same number of frames for the same prompt
with top-k 250 sampling and CFG 3, in turn (A B C A B C ...). A step is one LM call: frames + K - 1
of them under the delay pattern. Each row gives the median generate time as steps/s, and the same
without the codec decode of the frames (timed apart), `lm_steps_per_s`; ratios are to transformers.

    python benchmarks/bench_generate.py                      # mid (8 x 512) and small (24 x 1024) shapes
    python benchmarks/bench_generate.py --shapes mid --frames 100 --rounds 2 --threads 1
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


def time_decode(decode, codes: torch.Tensor) -> float:
    """Seconds one codec decode of codes [1, K, T] takes (its share of a generate call)."""
    start = time.perf_counter()
    decode(codes)
    return time.perf_counter() - start


def bench_shape(shape: str, frames: int, rounds: int) -> list[dict]:
    """Time transformers, ours in float32 and ours with int8 weights in turn; one result row per side."""
    with tempfile.TemporaryDirectory() as directory:
        build_hf_directory(shape, Path(directory))
        reference = MusicgenForConditionalGeneration.from_pretrained(directory).eval()
        tokenizer = T5Tokenizer.from_pretrained(directory)
        ours = {"float32": MusicGen.from_pretrained(directory, device="cpu"),
                "int8": MusicGen.from_pretrained(directory, device="cpu", quantize="int8")}
    num_codebooks = reference.decoder.num_codebooks
    steps = frames + num_codebooks - 1
    codes = torch.randint(0, 2048, (1, num_codebooks, frames))
    sides = {"transformers": (lambda seed: time_hf(reference, tokenizer, frames, num_codebooks),
                              lambda: time_decode(lambda c: reference.audio_encoder.decode(c[None], [None]), codes))}
    for name, model in ours.items():
        sides[f"ours-{name}"] = (lambda seed, model=model: time_ours(model, frames, seed),
                                 lambda model=model: time_decode(model.codec.decode, codes))
    seconds = {name: [] for name in sides}
    decode_seconds = {name: [] for name in sides}
    with torch.inference_mode():
        time_hf(reference, tokenizer, 4, num_codebooks)
        for model in ours.values():
            time_ours(model, 4, seed=0)
        for index in range(rounds):
            for name, (generate, decode) in sides.items():
                seconds[name].append(generate(index))
                decode_seconds[name].append(decode())
    rows = []
    for name in sides:
        total, decode = statistics.median(seconds[name]), statistics.median(decode_seconds[name])
        rows.append({"shape": shape, "side": name, "frames": frames, "steps": steps, "threads": torch.get_num_threads(),
                     "seconds": [round(value, 3) for value in seconds[name]], "codec_decode_s": round(decode, 3),
                     "steps_per_s": round(steps / total, 2), "lm_steps_per_s": round(steps / (total - decode), 2)})
    for row in rows:
        row["ratio"] = round(row["steps_per_s"] / rows[0]["steps_per_s"], 2)
        row["lm_ratio"] = round(row["lm_steps_per_s"] / rows[0]["lm_steps_per_s"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--frames", type=int, default=250, help="frames to generate per call (250: 5 s at 50 Hz)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every side in turn; medians are reported")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    for shape in args.shapes:
        for row in bench_shape(shape, args.frames, args.rounds):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
