"""The MusicGen API: text (and optionally an audio prompt) in, a waveform out.

    mg = MusicGen.from_pretrained(path)                  # this project's directory or a Hugging Face MusicGen one
    wav = mg.generate(["lo-fi piano with soft drums"], duration=8.0, seed=0)    # [B, C, N] at mg.sample_rate

A duration longer than the model's context (`max_duration`) is generated in overlapping windows
(musicgen/long_form.py): each window is prompted with the tail of the one before.

Checkpoints are found and read by musicgen/loading.py (both layouts).
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from codec import Codec
from codec.stereo import downmix, output_channels
from infra.audio import mix_channels, resample
from infra.config import save_config
from infra.memory import gather_buffers, release_free_memory
from patterns import get_provider

from .audiocraft_calls import AudiocraftCalls, texts_of
from .beat_clock import beats_per_frame, with_inferred_tempo
from .conditioners import TextConditioner, check_prompts
from .config import MusicGenConfig, Sampling, is_number
from .cpu_layout import choose_cpu_layout
from .fast_linear import Int4Linear, can_pack
from .generate import row_generators
from .hub import checkpoint_folder
from .lm import LM
from .loading import (
    CODEC_DIR,
    CONFIG_FILE,
    DEFAULT_CHECKPOINT,
    LM_WEIGHTS,
    TEXT_ENCODER_DIR,
    load_parts,
    resolve_device,
    resolve_dtype,
)
from .long_form import default_stride, plan_windows, stream_in_windows
from .melody import Melody, MelodyGeneration
from .streaming import Reach, measure_reach, stream_audio


class MusicGen(AudiocraftCalls, MelodyGeneration):
    """A text-conditioned LM over codec codes, its T5 conditioner and the codec that turns codes into audio."""

    def __init__(self, config: MusicGenConfig, lm: LM, conditioner: TextConditioner, codec: Codec) -> None:
        if (codec.num_codebooks, codec.cardinality) != (lm.config.num_codebooks, lm.config.cardinality):
            raise ValueError(f"the codec has K={codec.num_codebooks} codebooks of {codec.cardinality} codes, "
                             f"the LM expects K={lm.config.num_codebooks} of {lm.config.cardinality}")
        if conditioner.dim != lm.config.condition_dim:
            raise ValueError(f"the text encoder width {conditioner.dim} differs from lm.condition_dim {lm.config.condition_dim}")
        self.config = config
        self.lm = lm.eval()
        self.conditioner = conditioner
        self.codec = codec.eval()
        self.pattern_provider = get_provider(config.pattern.name, lm.config.num_codebooks, **config.pattern.options)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | torch.device | None = None,
                        dtype: str | torch.dtype | None = None, quantize: str | None = None,
                        *, compile: bool = False) -> MusicGen:
        """Load this project's checkpoint directory or a Hugging Face MusicGen one (the embedded default when path is None),
        or one by hub id ("facebook/musicgen-small", or audiocraft's "small") from the local Hugging Face cache (hub.py).

        device: "cpu", "cuda", "cuda:1", ... (default: CUDA when available). dtype: the LM's float type
        (default float32; float16 or bfloat16 on GPU); the text encoder (but under int4) and the codec stay in float32.
        quantize="int8": int8 LM weights (on the CPU through torch's dynamic quantization kernel), about 2x
        faster decoding than float32 on the CPU, close to but not exactly float32's tokens (the default None keeps the published weights as they are);
        quantize="int4": 4-bit weights with a scale and zero point per 64 inputs (fast_linear.Int4Linear), gathered
        into one allocation (`infra.memory.gather_buffers`), and the text encoder run in bfloat16 (its embedding
        tables float32 and memory-mapped): the least memory.
        compile=True: the LM's decode step compiled for fixed shapes (`LM.compile_decode`; CUDA graphs on GPU,
        where it pays; the first generation of each length compiles first, and its KV caches stay allocated for the
        next generation of that length).
        """
        device, dtype = resolve_device(device), resolve_dtype(dtype)
        if quantize not in (None, "int8", "int4"):
            raise ValueError(f"quantize must be None, 'int8' or 'int4', got {quantize!r}")
        path = checkpoint_folder(path) if path is not None else DEFAULT_CHECKPOINT  # a hub id: the local HF cache
        if not path.is_dir():
            hint = " (the embedded default model is not there yet)" if path == DEFAULT_CHECKPOINT else ""
            raise FileNotFoundError(f"no checkpoint directory at {path}{hint}")
        parts = load_parts(path, text_encoder_dtype=torch.bfloat16 if quantize == "int4" else torch.float32)
        model = cls(parts.config, parts.lm, parts.conditioner, parts.codec)
        model.to(device, dtype)
        if quantize is not None:
            {"int8": model.lm.quantize_int8, "int4": model.lm.quantize_int4}[quantize]()
        if quantize == "int4":
            gather_buffers(module for module in model.lm.modules() if isinstance(module, Int4Linear))
        if compile:
            model.lm.compile_decode()
        release_free_memory()  # the temporaries of the load (infra/memory.py)
        return model

    def save_pretrained(self, path: str | Path) -> None:
        """Write this project's layout (see the module docstring); `from_pretrained(path)` reads it back."""
        if self.lm.quantized:
            raise ValueError("an int8- or int4-quantized LM cannot be saved; save the model loaded without quantize")
        self.lm.unpack()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.text_encoder = self.conditioner.package or ""  # a packaged encoder's weights stay in its package
        save_config(self.config, path / CONFIG_FILE)
        save_file({name: tensor.contiguous() for name, tensor in self.lm.state_dict().items()}, str(path / LM_WEIGHTS))
        self.codec.save_pretrained(path / CODEC_DIR)
        if not self.config.text_encoder:
            self.conditioner.save_pretrained(path / TEXT_ENCODER_DIR)

    def to(self, device: str | torch.device, dtype: torch.dtype = torch.float32) -> MusicGen:
        self.lm.unpack().to(device=device, dtype=dtype)
        self.conditioner.to(device)
        self.codec.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.lm.device

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def max_frames(self) -> int:
        """The most frames one call can generate: the pattern's steps must fit the LM's positions."""
        one, two = (len(self.pattern_provider.layout(frames)) - 1 for frames in (1, 2))
        per_frame, fixed = two - one, 2 * one - two
        return (self.lm.config.max_positions - fixed) // per_frame

    @property
    def max_duration(self) -> float:
        return self.max_frames / self.frame_rate

    def generate(self, prompts: list[str] | None = None, duration: float | None = None, *,
                 use_sampling: bool | None = None, top_k: int | None = None, top_p: float | None = None,
                 temperature: float | None = None, cfg_coef: float | None = None, seed: int | None = None,
                 first_row: int = 0, stride: float | None = None, return_codes: bool = False,
                 progress: bool | Callable[[int, int], None] = False, channels: int | None = None,
                 descriptions: list[str | None] | None = None,
                 return_tokens: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Audio for each prompt: wav [B, C, frames * hop] float32 (and codes [B, K, frames] with return_codes).

        An empty prompt is unconditional. Arguments left None take `config.generation`'s values.
        seed (an integer >= 0): sampling draws prompt i's tokens from its own random stream, seeded from
        (seed, first_row + i), so a prompt's music depends on the seed and its row only, never on the other
        prompts of the call; first_row (default 0) is the row of this call's first prompt in a longer list
        generated in several calls (musicgen-generate passes each batch's place in its prompt list), so that
        any batch size gives the same music. seed None: torch's global RNG, one stream for the whole batch.
        A duration over `max_duration` is made in windows of `max_duration` seconds, each starting `stride`
        seconds after the one before (default: 18/30 of a window, as audiocraft's 18 s in 30 s).
        progress: True for a progress bar, or a callback(step, total) called after every step.
        channels: C, None for the model's own (2 for a stereo model); 1 asks a stereo model for the mean of its two.
        descriptions, return_tokens: audiocraft's names for prompts and return_codes (musicgen/audiocraft_calls.py).
        """
        sampling = self._sampling(use_sampling=use_sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                                  cfg_coef=cfg_coef)
        return self._generate(texts_of(prompts, descriptions), duration=duration, prompt_codes=None, downbeat_frame=0.0,
                              sampling=sampling, seed=seed, first_row=first_row, stride=stride,
                              return_codes=return_codes or return_tokens, progress=progress, channels=channels)

    def generate_continuation(self, prompt_wav: torch.Tensor, prompt_sample_rate: int, prompts: list[str] | None = None,
                              duration: float | None = None, *, use_sampling: bool | None = None, top_k: int | None = None,
                              top_p: float | None = None, temperature: float | None = None, cfg_coef: float | None = None,
                              seed: int | None = None, first_row: int = 0, stride: float | None = None,
                              return_codes: bool = False, progress: bool | Callable[[int, int], None] = False,
                              downbeat: float = 0.0, channels: int | None = None,
                              descriptions: list[str | None] | None = None,
                              return_tokens: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Continue prompt_wav [B, C, N] (or [C, N]) to `duration` seconds in all; the output starts with the prompt's frames.

        prompts: one text per clip, or None for unconditional continuation. A prompt longer than a window
        stays whole in the output; the generation is prompted with its last frames (see `generate`).
        seed and first_row: as for `generate`, clip i is row first_row + i.
        downbeat: the time (seconds into prompt_wav) at which a bar starts, for an LM with a beat clock
        (musicgen/beat_clock.py) and a prompt that states its BPM; by default the audio starts on a bar.
        channels: as for `generate` (a stereo model continues stereo audio; a mono prompt_wav is played on both).
        descriptions, return_tokens: as for `generate`.
        """
        prompt_codes, prompts, downbeat_frame = self._continuation_inputs(prompt_wav, prompt_sample_rate,
                                                                          texts_of(prompts, descriptions), downbeat)
        sampling = self._sampling(use_sampling=use_sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                                  cfg_coef=cfg_coef)
        return self._generate(prompts, duration=duration, prompt_codes=prompt_codes, downbeat_frame=downbeat_frame,
                              sampling=sampling, seed=seed, first_row=first_row, stride=stride,
                              return_codes=return_codes or return_tokens, progress=progress, channels=channels)

    def generate_stream(self, prompts: list[str] | None, duration: float | None = None, chunk_seconds: float = 0.5, *,
                        prompt_wav: torch.Tensor | None = None, prompt_sample_rate: int | None = None,
                        downbeat: float = 0.0, use_sampling: bool | None = None, top_k: int | None = None,
                        top_p: float | None = None, temperature: float | None = None, cfg_coef: float | None = None,
                        seed: int | None = None, first_row: int = 0, stride: float | None = None,
                        progress: bool | Callable[[int, int], None] = False,
                        channels: int | None = None) -> Iterator[torch.Tensor]:
        """`generate` (or, given prompt_wav and prompt_sample_rate, `generate_continuation`) as audio chunks
        wav [B, C, n] yielded while the frames are made, each of at least chunk_seconds but the last.

        Concatenated, the chunks are the call's audio (the same seed gives the same audio, up to float rounding);
        a chunk is decoded once the frames its decoder reaches (musicgen/streaming.py) are made. Bad arguments
        raise ValueError here, before anything is generated; closing the iterator, or an exception raised by the
        progress callback, stops the generation after the current step. channels: as for `generate`.
        """
        chunk_frames = round(chunk_seconds * self.frame_rate) if is_number(chunk_seconds) else 0
        if chunk_frames < 1:
            raise ValueError(f"chunk_seconds must be at least one frame (1/{self.frame_rate:g} s), "
                             f"got {chunk_seconds!r}")
        channels = output_channels(channels, self.codec.channels)
        prompt_codes, downbeat_frame = None, 0.0
        if prompt_wav is not None or prompt_sample_rate is not None:
            prompt_codes, prompts, downbeat_frame = self._continuation_inputs(prompt_wav, prompt_sample_rate, prompts,
                                                                              downbeat)
        sampling = self._sampling(use_sampling=use_sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                                  cfg_coef=cfg_coef)
        total, frames = self._new_frames(prompts, duration=duration, prompt_codes=prompt_codes,
                                         downbeat_frame=downbeat_frame, sampling=sampling, seed=seed,
                                         first_row=first_row, stride=stride, progress=progress)
        frames = frames if prompt_codes is None else itertools.chain([prompt_codes], frames)
        return stream_audio(lambda codes: downmix(_one_clip_at_a_time(self.codec.decode, codes), channels), frames,
                            reach=self.decoder_reach, total_frames=total, chunk_frames=chunk_frames,
                            hop=self.codec.hop_length)

    @functools.cached_property
    def decoder_reach(self) -> Reach:
        """The codes each chunk of `generate_stream` decodes around it (musicgen/streaming.py), measured on first use
        (a fraction of a second for the default model: read it before streaming to keep that off a first chunk)."""
        return measure_reach(self.codec)

    def _continuation_inputs(self, prompt_wav: torch.Tensor, prompt_sample_rate: int, prompts: list[str] | None,
                             downbeat: float) -> tuple[torch.Tensor, list[str], float]:
        """The audio prompt as codes [B, K, T_p], the text prompts (B; None: unconditional) and the downbeat in
        frames, checked (see `generate_continuation`)."""
        prompt_audio = self._prompt_audio(prompt_wav, prompt_sample_rate)
        prompt_seconds = prompt_audio.shape[-1] / self.sample_rate
        if not is_number(downbeat) or not 0 <= downbeat < prompt_seconds:
            raise ValueError(f"downbeat must be a time within the audio prompt, 0 to {prompt_seconds:.3f} s; got {downbeat}")
        prompt_codes = _one_clip_at_a_time(self.codec.encode, prompt_audio)
        if prompts is None:
            prompts = [""] * prompt_codes.shape[0]
        check_prompts(prompts)
        if len(prompts) != prompt_codes.shape[0]:
            raise ValueError(f"got {len(prompts)} prompts for {prompt_codes.shape[0]} audio prompts; expected one each")
        return prompt_codes, prompts, downbeat * self.frame_rate

    def _sampling(self, **given: Any) -> Sampling:
        """A Sampling of the arguments given (use_sampling, temperature, top_k, top_p, cfg_coef), each None taking
        `config.generation`'s value."""
        defaults = self.config.generation
        return Sampling(**{name: getattr(defaults, name) if value is None else value for name, value in given.items()})

    def _generate(self, prompts: list[str], *, duration: float | None, prompt_codes: torch.Tensor | None,
                  downbeat_frame: float, sampling: Sampling, seed: int | None, first_row: int, stride: float | None,
                  return_codes: bool, progress: bool | Callable[[int, int], None], channels: int | None,
                  melody: Melody | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The path both public calls share: prompts (B strings) and, for a continuation, prompt_codes [B, K, T_p]
        kept as the first frames -> wav [B, C, frames * hop] (and codes [B, K, frames]). downbeat_frame: where a bar
        starts, in frames from the first prompt frame; melody: `generate_with_chroma`'s; the others as in `generate`."""
        channels = output_channels(channels, self.codec.channels)
        _, frames = self._new_frames(prompts, duration=duration, prompt_codes=prompt_codes,
                                     downbeat_frame=downbeat_frame, sampling=sampling, seed=seed,
                                     first_row=first_row, stride=stride, progress=progress, melody=melody)
        codes = torch.cat([*([] if prompt_codes is None else [prompt_codes]), *frames], dim=-1)
        wav = downmix(_one_clip_at_a_time(self.codec.decode, codes), channels)
        return (wav, codes) if return_codes else wav

    def _new_frames(self, prompts: list[str], *, duration: float | None, prompt_codes: torch.Tensor | None,
                    downbeat_frame: float, sampling: Sampling, seed: int | None, first_row: int, stride: float | None,
                    progress: bool | Callable[[int, int], None], melody: Melody | None = None
                    ) -> tuple[int, Iterator[torch.Tensor]]:
        """The clip's length in frames, and an iterator over the frames after prompt_codes [B, K, T_p] (if any) as
        codes [B, K, n], made while it is read (`stream_in_windows`); the arguments are checked first."""
        check_prompts(prompts)
        generators = self._generators(seed, first_row, len(prompts))
        frames = self._frames(self.config.generation.duration if duration is None else duration)
        prompt_frames = 0 if prompt_codes is None else prompt_codes.shape[-1]
        if prompt_frames >= frames:
            raise ValueError(f"duration ({frames} frames) must be longer than the audio prompt ({prompt_frames} frames)")
        windows = plan_windows(prompt_frames, frames, self.max_frames, self._stride_frames(stride))
        tempo = beats_per_frame(prompts, self.frame_rate).to(self.device)  # checks every stated tempo, clock or not
        condition, mask = self.conditioner(prompts)
        tempo = with_inferred_tempo(tempo, self.lm.inferred_bpm(condition.to(self.device), mask.to(self.device)),
                                    self.frame_rate)  # a prompt that states no number: the tempo of its words
        self._prepare_for_inference()
        return frames, stream_in_windows(self.lm, self.pattern_provider, condition.to(self.device),
                                         mask.to(self.device), sampling=sampling, windows=windows, prompt=prompt_codes,
                                         generators=generators, progress=_progress_callback(progress),
                                         beats_per_frame=tempo if self.lm.config.beat_clock else None,
                                         downbeat_frame=downbeat_frame,
                                         chromas=None if melody is None else melody.window_chromas(windows))

    def check_lengths(self, duration: float | None = None, stride: float | None = None) -> None:
        """Raise ValueError for a duration (not positive, shorter than one frame) or a long-form stride (under a
        frame, not shorter than a window) that this model cannot take, before anything is generated; None is the
        default."""
        self._frames(self.config.generation.duration if duration is None else duration)
        self._stride_frames(stride)

    def _prepare_for_inference(self) -> None:
        """Fold the codec decoder's weight norm, and on the CPU lay the LM's float32 weights out as this machine
        decodes fastest (`cpu_layout.choose_cpu_layout`; not those of a quantized or compiled LM): at the first
        generation, and after `to` or `save_pretrained` have unpacked them."""
        folding = self.codec.decoder_has_weight_norm
        laying_out = can_pack(self.lm.norm.weight) and not (self.lm.quantized or self.lm.fused
                                                            or self.lm.compiled_decode)
        if folding:
            self.codec.remove_weight_norm(decoder_only=True)
        if laying_out:
            choose_cpu_layout(self.lm)
        if folding or laying_out:
            release_free_memory()  # the weights replaced (infra/memory.py)

    def _frames(self, duration: float) -> int:
        if not is_number(duration) or not math.isfinite(duration) or duration <= 0:
            raise ValueError(f"duration must be a finite number of seconds > 0, got {duration!r}")
        frames = round(duration * self.frame_rate)
        if frames < 1:
            raise ValueError(f"duration {duration} s is shorter than one frame (1/{self.frame_rate:g} s)")
        if frames > self.max_frames and self.max_frames < 2:
            raise ValueError(f"duration {duration} s is longer than this model's maximum of {self.max_duration:.2f} s "
                             f"({self.max_frames} frame with the {self.config.pattern.name} pattern, too few for windows)")
        return frames

    def _stride_frames(self, stride: float | None) -> int:
        stride = self.extend_stride if stride is None else stride  # set_generation_params' default
        if stride is None:
            return default_stride(self.max_frames)
        frames = round(stride * self.frame_rate) if is_number(stride) and math.isfinite(stride) else 0
        if not 1 <= frames < self.max_frames:
            raise ValueError(f"stride must be at least one frame (1/{self.frame_rate:g} s) and shorter than a window "
                             f"({self.max_duration:.2f} s), got {stride!r}")
        return frames

    def _generators(self, seed: int | None, first_row: int, rows: int) -> list[torch.Generator] | None:
        """One generator per prompt of a call, prompt i's seeded from (seed, first_row + i); None (torch's global
        RNG) without a seed."""
        if not _is_count(first_row):
            raise ValueError(f"first_row must be an integer >= 0, got {first_row!r}")
        if seed is None:
            if first_row:
                raise ValueError(f"first_row={first_row} places the prompts in a seeded request; give a seed too")
            return None
        if not _is_count(seed):
            raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
        return row_generators(seed, range(first_row, first_row + rows), self.device)

    def _prompt_audio(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """wav [B, C, N] or [C, N] at sample_rate -> [B, codec.channels, N'] at the codec's rate, on the device."""
        if not isinstance(wav, torch.Tensor) or wav.dim() not in (2, 3) or not wav.is_floating_point():
            raise ValueError(f"prompt_wav must be a float tensor [B, C, N] or [C, N], got {getattr(wav, 'shape', type(wav))}")
        if not isinstance(sample_rate, int) or sample_rate < 1:
            raise ValueError(f"prompt_sample_rate must be a positive integer, got {sample_rate!r}")
        clips = wav if wav.dim() == 3 else wav[None]
        clips = [mix_channels(resample(clip.detach().float().cpu(), sample_rate, self.sample_rate), self.codec.channels)
                 for clip in clips]
        return torch.stack(clips).to(self.device)


def _one_clip_at_a_time(codec_call: Callable[[torch.Tensor], torch.Tensor], clips: torch.Tensor) -> torch.Tensor:
    """codec_call (encode [B, C, N] -> [B, K, T], or decode back) run on each clip alone: batched convolutions
    round differently from one batch size to another, and a clip's codes and audio must not depend on its batch."""
    return torch.cat([codec_call(clip[None]) for clip in clips])


def _is_count(value) -> bool:
    """An int >= 0, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _progress_callback(progress: bool | Callable[[int, int], None]) -> Callable[[int, int], None] | None:
    if callable(progress):
        return progress
    if not progress:
        return None
    bar = tqdm(unit="step", desc="generating")

    def update(step: int, total: int) -> None:
        bar.total = total
        bar.update(step - bar.n)
        if step == total:
            bar.close()

    return update
