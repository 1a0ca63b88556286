"""Generation speed: musicgen-lite's `MusicGen.generate` against transformers' MusicGen on identical weights.

A random-initialised MusicgenForConditionalGeneration (T5-base-shaped text encoder, the 32 kHz EnCodec
of musicgen-small, a decoder of the chosen shape) is saved in the Hugging Face layout. Each side runs in
its own worker process (so that peak memories stay apart), loads that directory, warms up, and then
the workers generate in turn, round after round (A B C A B C ...), the same number of frames for the
same prompt with top-k 250 sampling and CFG 3. A step is one LM call: frames + K - 1 of them under the
delay pattern. steps/s excludes the codec decode of the frames (timed apart in the same worker); medians
over the rounds.

Columns: steps/s; ratio to transformers; fraction of the weight-streaming bound (benchmarks/streaming_bound.py,
measured first with the decoder's own matrix shapes: float32 sides against the float32 bound, int8 and int4
against their bytes at the same rate); peak memory (the worker's resident-set high-water mark while generating,
model included, or CUDA's peak allocation). Then the codec (CPU), in turn in one process: transformers'
EncodecModel.decode against this project's Codec.decode (weight norm folded) on the same codes and weights,
with their largest difference.

    python benchmarks/bench_generate.py                                   # mid (8 x 512) and small (24 x 1024), 2 threads
    python benchmarks/bench_generate.py --shapes mid --frames 100 --rounds 2 --threads 1 --clock cpu  # on a busy machine
    python benchmarks/bench_generate.py --device cuda --dtype bfloat16 --compile --sides transformers ours \\
        --batch-sizes 1 2 4 8 16 32 64 128                               # GPU: the batch at which throughput peaks
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from streaming_bound import SHAPES as BOUND_SHAPES
from streaming_bound import measure_bound
from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config, T5Tokenizer

from codec import Codec
from musicgen import MusicGen
from musicgen.hf import read_hf_weights, split_prefix

SHAPES = {name: dict(num_attention_heads=sizes["hidden_size"] // 64, **sizes) for name, sizes in BOUND_SHAPES.items()}
SIDES = ("transformers", "ours", "ours-int8", "ours-int4")  # ours-X: MusicGen.from_pretrained(quantize="X")
PROMPT = "lo-fi piano with soft drums"
CODEC_CODES = "codec_codes.pt"


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
    from transformers import MusicgenForConditionalGeneration  # here: see Side

    model = MusicgenForConditionalGeneration(config).eval()
    with torch.no_grad():  # transformers leaves the codebooks at zero: make the decoded audio non-trivial
        for level in model.audio_encoder.quantizer.layers:
            level.codebook.embed.normal_()
    model.save_pretrained(path)
    words = PROMPT.replace("-", " ").split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(letter, -3.0) for letter in string.ascii_lowercase + "-"] + [("▁" + word, -1.0) for word in words]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(path)


# ---- worker: one side in its own process, driven by lines on stdin ----------------------------------------------

def quantization(side: str) -> str | None:
    """The `quantize` argument of a side: "int8" for ours-int8, "int4" for ours-int4, None for the others."""
    return side.removeprefix("ours-") if side.startswith("ours-") else None


class Side:
    """One side loaded from the directory: generate(batch, frames) and decode(codes) as the benchmark times them."""

    def __init__(self, side: str, directory: Path, device: str, dtype: torch.dtype, compile: bool) -> None:
        self.side, self.device = side, torch.device(device)
        if side == "transformers":
            # imported here, not at the top: transformers' modelling code costs about 120 MB of resident memory,
            # which a worker of ours (whose peak memory is measured) does not import
            from transformers import MusicgenForConditionalGeneration

            self.model = MusicgenForConditionalGeneration.from_pretrained(directory, dtype=dtype).to(self.device).eval()
            self.tokenizer = T5Tokenizer.from_pretrained(directory)
            self.num_codebooks = self.model.decoder.num_codebooks
        else:
            self.model = MusicGen.from_pretrained(directory, device=device, dtype=dtype,
                                                  quantize=quantization(side), compile=compile)
            self.num_codebooks = self.model.lm.config.num_codebooks

    def generate(self, batch: int, frames: int, seed: int) -> None:
        if self.side == "transformers":
            inputs = self.tokenizer([PROMPT] * batch, return_tensors="pt").to(self.device)
            self.model.generate(**inputs, do_sample=True, top_k=250, guidance_scale=3.0,
                                max_new_tokens=frames + self.num_codebooks - 1)
        else:
            self.model.generate([PROMPT] * batch, duration=frames / self.model.frame_rate, use_sampling=True, top_k=250,
                                cfg_coef=3.0, seed=seed)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        codes = codes.to(self.device)
        if self.side == "transformers":
            return self.model.audio_encoder.decode(codes[None], [None])[0]
        return self.model.codec.decode(codes)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new high-water mark: CUDA's peak allocation, or the process's peak resident set (Linux)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif Path("/proc/self/clear_refs").exists():
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@torch.inference_mode()
def run_worker(args: argparse.Namespace) -> None:
    """Load one side, warm up, then answer 'run BATCH SEED' lines with a JSON line of timings, and 'memory'."""
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    side = Side(args.worker, Path(args.model_dir), args.device, getattr(torch, args.dtype), args.compile)
    codes = torch.load(Path(args.model_dir) / CODEC_CODES)
    side.generate(1, 4, seed=0)
    side.decode(codes[..., :4])
    reset_peak_memory(side.device)
    lm = getattr(side.model, "lm", None)  # ours: the float32 layout its first generation chose (musicgen/cpu_layout.py)
    layout = None if lm is None or lm.quantized or not lm.fused else "packed" if lm.packed else "plain"
    print(json.dumps({"ready": args.worker, "layout": layout}), flush=True)
    for line in sys.stdin:
        command, *values = line.split()
        if command == "memory":
            print(json.dumps({"peak_mb": round(peak_memory_mb(side.device), 1)}), flush=True)
            continue
        batch, seed = int(values[0]), int(values[1])
        side.synchronize()
        start = clock()
        side.generate(batch, args.frames, seed)
        side.synchronize()
        generate_seconds = clock() - start
        start = clock()
        side.decode(codes[:1].expand(batch, -1, -1))
        side.synchronize()
        decode_seconds = clock() - start
        print(json.dumps({"generate_s": generate_seconds, "decode_s": decode_seconds}), flush=True)


# ---- driver -----------------------------------------------------------------------------------------------------

class Worker:
    def __init__(self, side: str, directory: Path, args: argparse.Namespace) -> None:
        command = [sys.executable, __file__, "--worker", side, "--model-dir", str(directory), "--frames", str(args.frames),
                   "--threads", str(args.threads), "--device", args.device, "--dtype", args.dtype, "--clock", args.clock]
        command += ["--compile"] * (args.compile and side != "transformers")
        self.side = side
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.layout = self.ask(None)["layout"]

    def ask(self, line: str | None) -> dict:
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the {self.side} worker stopped (see its error above)")
        return json.loads(answer)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def bench_shape(shape: str, args: argparse.Namespace, bound: dict | None) -> list[dict]:
    """One row per side: median steps/s over the rounds, ratio to the first side, fraction of the bound, peak memory."""
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        build_hf_directory(shape, directory)
        torch.save(torch.randint(0, 2048, (1, 4, args.frames), generator=torch.Generator().manual_seed(0)),
                   directory / CODEC_CODES)
        workers = [Worker(side, directory, args) for side in args.sides]
        results = {worker.side: [] for worker in workers}
        for index in range(args.rounds):
            for worker in workers:
                results[worker.side].append(worker.ask(f"run 1 {index}"))
        peaks = {worker.side: worker.ask("memory")["peak_mb"] for worker in workers}
        layouts = {worker.side: worker.layout for worker in workers}
        sweep = [batch_sweep(worker, args) for worker in workers if args.batch_sizes and worker.side != "transformers"]
        for worker in workers:
            worker.close()
        codec = bench_codec(directory, args) if shape == args.shapes[0] and args.device == "cpu" else None
    steps = args.frames + 4 - 1
    rows = []
    for side, timings in results.items():
        generate = statistics.median(t["generate_s"] for t in timings)
        decode = statistics.median(t["decode_s"] for t in timings)
        row = {"shape": shape, "device": args.device, "precision": quantization(side) or args.dtype,
               "side": side if layouts[side] is None else f"{side} ({layouts[side]})", "threads": args.threads,
               "frames": args.frames, "steps": steps,
               "steps_per_s": round(steps / (generate - decode), 2), "total_steps_per_s": round(steps / generate, 2),
               "codec_decode_s": round(decode, 3), "peak_mb": peaks[side]}
        if bound is not None:
            limit = bound[{"ours-int8": "int8_bound_steps_per_s", "ours-int4": "int4_bound_steps_per_s"}.get(
                side, "bound_steps_per_s")]
            row["of_bound"] = round(row["steps_per_s"] / limit, 3)
        rows.append(row)
    for row in rows:
        row["ratio"] = round(row["steps_per_s"] / rows[0]["steps_per_s"], 2)
    return rows + [row for rows_of_side in sweep for row in rows_of_side] + ([codec] if codec else [])


@torch.inference_mode()
def bench_codec(directory: Path, args: argparse.Namespace) -> dict:
    """transformers' EncodecModel.decode against Codec.decode (weight norm folded) on the directory's codec
    weights and the same codes, in turn in this process; medians and the largest difference of the audio."""
    config = MusicgenConfig.from_pretrained(directory).audio_encoder
    state = split_prefix(read_hf_weights(directory), "audio_encoder.")
    from transformers import EncodecModel  # here: see Side

    reference = EncodecModel(config).eval()
    reference.load_state_dict(state)
    ours = Codec.from_hf(config.to_dict(), state).eval().remove_weight_norm()
    codes = torch.load(directory / CODEC_CODES)
    decoders = {"transformers": lambda: reference.decode(codes[None], [None])[0], "ours": lambda: ours.decode(codes)}
    audio = {name: decode() for name, decode in decoders.items()}
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    seconds = {name: [] for name in decoders}
    for _ in range(max(3, args.rounds)):
        for name, decode in decoders.items():
            start = clock()
            decode()
            seconds[name].append(clock() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    return {"codec": "32 kHz EnCodec", "frames": codes.shape[-1], "threads": torch.get_num_threads(),
            "transformers_s": round(median["transformers"], 3), "ours_s": round(median["ours"], 3),
            "ratio": round(median["transformers"] / median["ours"], 3),
            "max_abs_difference": (audio["transformers"] - audio["ours"]).abs().max().item()}


def batch_sweep(worker: Worker, args: argparse.Namespace) -> list[dict]:
    """Throughput (frames of every prompt per second) at each batch size; the peak is marked."""
    steps = args.frames + 4 - 1
    rows = []
    for batch in args.batch_sizes:
        timing = worker.ask(f"run {batch} 0")
        steps_per_s = steps / (timing["generate_s"] - timing["decode_s"])
        rows.append({"side": worker.side, "batch": batch, "steps_per_s": round(steps_per_s, 2),
                     "prompt_steps_per_s": round(batch * steps_per_s, 1)})
    best = max(rows, key=lambda row: row["prompt_steps_per_s"])
    best["peak"] = True
    return rows


def print_table(rows: list[dict], bounds: dict[str, dict]) -> None:
    print("\n| shape | device | precision | side | steps/s | ratio | of bound | peak memory (MB) |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        if "shape" in row:
            print(f"| {row['shape']} | {row['device']} | {row['precision']} | {row['side']} | {row['steps_per_s']} | "
                  f"{row['ratio']} | {row.get('of_bound', '-')} | {row['peak_mb']:.0f} |")
    for row in rows:
        if "codec" in row:
            print(f"\ncodec decode of {row['frames']} frames ({row['threads']} threads): transformers {row['transformers_s']} s, "
                  f"ours {row['ours_s']} s (x{row['ratio']}), largest difference {row['max_abs_difference']:.2g}")
    for shape, bound in bounds.items():
        print(f"\nbound ({shape}, {bound['rows']} rows, {bound['threads']} threads): {bound['weight_mb']} MB of float32 "
              f"weights a step; GB/s {bound['gb_per_s']}; {bound['bound_steps_per_s']} steps/s float32, "
              f"{bound['int8_bound_steps_per_s']} int8, {bound['int4_bound_steps_per_s']} int4, "
              f"{bound['read_bound_steps_per_s']} at the plain read bandwidth")
    sweep = [row for row in rows if "batch" in row]
    if sweep:
        print("\n| side | batch | steps/s | prompt-steps/s |\n| --- | ---: | ---: | ---: |")
        for row in sweep:
            print(f"| {row['side']} | {row['batch']} | {row['steps_per_s']} | {row['prompt_steps_per_s']}"
                  f"{' (peak)' if row.get('peak') else ''} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["mid", "small"], choices=list(SHAPES))
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES,
                        help="the first is the reference of the ratios")
    parser.add_argument("--frames", type=int, default=250, help="frames to generate per call (250: 5 s at 50 Hz)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every side in turn; medians are reported")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--compile", action="store_true", help="this project's compiled decode step (LM.compile_decode)")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[], help="then sweep these batch sizes (ours)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: each process's CPU time, steadier on a loaded machine (use with --threads 1)")
    parser.add_argument("--no-bound", action="store_true", help="skip measuring the weight-streaming bound")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    rows, bounds = [], {}
    for shape in args.shapes:
        if not args.no_bound and args.device == "cpu":
            clock = time.perf_counter if args.clock == "wall" else time.thread_time
            bounds[shape] = measure_bound(shape, clock=clock)
            print(json.dumps(bounds[shape]), flush=True)
        for row in bench_shape(shape, args, bounds.get(shape)):
            print(json.dumps(row), flush=True)
            rows.append(row)
    print_table(rows, bounds)


if __name__ == "__main__":
    main()
