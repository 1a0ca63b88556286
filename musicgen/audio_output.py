"""Generated audio to files: normalisation (audiocraft's strategies), clipping to [-1, 1] counted, atomic writes.

    path = audio_write("out/piano", wav, sample_rate, strategy="loudness")   # writes out/piano.wav; wav [C, N] or [N]
    wav, clipped = prepare_for_writing(wav, normalize=True)                   # wav [C, N] at a -1 dBFS peak
    write_atomically(Path("out/piano.flac"), wav, sample_rate)

`audio_write` is audiocraft's (audiocraft/data/audio.py) with its defaults, written with soundfile instead of ffmpeg:
16-bit PCM for wav and flac, Vorbis for ogg; mp3 is not offered.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from infra.audio import write_audio
from infra.files import atomic_write

from .loudness import integrated_loudness

STRATEGIES = ("peak", "clip", "rms", "loudness", "none")
FORMATS = ("wav", "flac", "ogg")
PEAK_HEADROOM_DB = 1.0    # dB below full scale: room for lossy encoders and resampling
RMS_HEADROOM_DB = 18.0
LOUDNESS_HEADROOM_DB = 14.0  # -14 LUFS, streaming services' level
ENERGY_FLOOR = 2e-3       # RMS under which "loudness" leaves the audio as it is (near silence has no loudness to match)


def audio_write(stem_name: str | Path, wav: torch.Tensor, sample_rate: int, format: str = "wav", *,
                normalize: bool = True, strategy: str = "peak", peak_clip_headroom_db: float = PEAK_HEADROOM_DB,
                rms_headroom_db: float = RMS_HEADROOM_DB, loudness_headroom_db: float = LOUDNESS_HEADROOM_DB,
                loudness_compressor: bool = False, log_clipping: bool = True, make_parent_dir: bool = True,
                add_suffix: bool = True) -> Path:
    """Write wav [C, N] (or [N], mono) at sample_rate to stem_name + "." + format, normalised by `strategy`
    (see `normalized`), clipped to [-1, 1]; return the path written. Written whole or not at all.

    add_suffix=False: stem_name is the whole path, and must end in "." + format. log_clipping: a warning counting
    the samples clipped, if any. make_parent_dir=False: FileNotFoundError if the folder is missing.
    """
    wav = _checked_wav(wav)
    _check_rate(sample_rate)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(f"{stem_name}.{format}" if add_suffix else stem_name)
    if path.suffix.lower() != f".{format}":
        raise ValueError(f"with add_suffix=False, stem_name must end in .{format} (soundfile writes by the suffix), "
                         f"got {str(stem_name)!r}")
    if not make_parent_dir and not path.parent.is_dir():
        raise FileNotFoundError(f"no folder {path.parent} to write {path.name} in (make_parent_dir=False)")
    wav = normalized(wav, sample_rate, normalize=normalize, strategy=strategy,
                     peak_clip_headroom_db=peak_clip_headroom_db, rms_headroom_db=rms_headroom_db,
                     loudness_headroom_db=loudness_headroom_db, loudness_compressor=loudness_compressor)
    wav, clipped = clipped_to_range(wav)
    if log_clipping and clipped:
        warnings.warn(f"{path}: {clipped} samples ({clipped / wav.numel():.2%}) clipped to [-1, 1] after "
                      f"{strategy!r} normalisation", stacklevel=2)
    write_atomically(path, wav, sample_rate)
    return path


def normalized(wav: torch.Tensor, sample_rate: int | None = None, *, normalize: bool = True, strategy: str = "peak",
               peak_clip_headroom_db: float = PEAK_HEADROOM_DB, rms_headroom_db: float = RMS_HEADROOM_DB,
               loudness_headroom_db: float = LOUDNESS_HEADROOM_DB, loudness_compressor: bool = False) -> torch.Tensor:
    """wav [C, N] float scaled by audiocraft's strategy (audiocraft/data/audio_utils.py, normalize_audio), not clipped:

    "peak"      to a peak of -peak_clip_headroom_db dBFS (normalize=False: only scaled down, and only if louder)
    "clip"      clamped to +-(-peak_clip_headroom_db dBFS)
    "rms"       the channels' mean to an RMS of -rms_headroom_db dBFS (normalize=False: only down)
    "loudness"  to -loudness_headroom_db LUFS (BS.1770, musicgen/loudness.py; needs sample_rate and 0.4 s of audio),
                then through tanh with loudness_compressor; left as it is under an RMS of ENERGY_FLOOR
    "none"      as it is
    Silence stays silent (audiocraft would divide by its zero peak).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    for name, value in (("peak_clip_headroom_db", peak_clip_headroom_db), ("rms_headroom_db", rms_headroom_db),
                        ("loudness_headroom_db", loudness_headroom_db)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number of dB, got {value!r}")
    peak_level = 10 ** (-peak_clip_headroom_db / 20)
    if strategy == "peak":
        return _scaled(wav, peak_level / wav.abs().max(), only_down=not normalize)
    if strategy == "clip":
        return wav.clamp(-peak_level, peak_level)
    if strategy == "rms":
        rms = wav.mean(dim=0).pow(2).mean().sqrt()
        return _scaled(wav, 10 ** (-rms_headroom_db / 20) / rms, only_down=not normalize)
    if strategy == "loudness":
        return _to_loudness(wav, sample_rate, -loudness_headroom_db, compress=loudness_compressor)
    return wav


def prepare_for_writing(wav: torch.Tensor, normalize: bool = False) -> tuple[torch.Tensor, int]:
    """wav [C, N] -> (wav scaled to a -1 dBFS peak if normalize, then clipped to [-1, 1]; the count of clipped samples)."""
    wav = wav.detach().float().cpu()
    return clipped_to_range(normalized(wav) if normalize else wav)


def clipped_to_range(wav: torch.Tensor) -> tuple[torch.Tensor, int]:
    """wav clamped to [-1, 1], and the count of samples that were outside."""
    return wav.clamp(-1, 1), int((wav.abs() > 1).sum())


def write_atomically(path: Path, wav: torch.Tensor, sample_rate: int) -> None:
    """Write wav [C, N] (format from path's extension) beside path, then rename: path is whole or untouched."""
    atomic_write(path, lambda temporary: write_audio(temporary, wav, sample_rate))


def _checked_wav(wav: torch.Tensor) -> torch.Tensor:
    """A float tensor [C, N] or [N] of finite samples, as [C, N] float32 on the CPU."""
    if not isinstance(wav, torch.Tensor) or not wav.is_floating_point() or wav.dim() not in (1, 2):
        raise ValueError(f"wav must be a float tensor [C, N] or [N], got {getattr(wav, 'shape', type(wav))} "
                         f"{getattr(wav, 'dtype', '')}")
    if wav.shape[-1] == 0:
        raise ValueError(f"wav has no samples: shape {tuple(wav.shape)}")
    if not wav.isfinite().all():
        raise ValueError("wav holds NaN or infinite samples")
    wav = wav.detach().float().cpu()
    return wav[None] if wav.dim() == 1 else wav


def _scaled(wav: torch.Tensor, gain: torch.Tensor, only_down: bool) -> torch.Tensor:
    """wav times gain; unchanged for silence (an infinite gain), or if only_down and gain >= 1."""
    if not gain.isfinite() or (only_down and gain >= 1):
        return wav
    return wav * gain


def _check_rate(sample_rate: int) -> None:
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")


def _to_loudness(wav: torch.Tensor, sample_rate: int | None, lufs: float, compress: bool) -> torch.Tensor:
    """wav [C, N] scaled to `lufs` (see `normalized`)."""
    _check_rate(sample_rate)
    if wav.pow(2).mean().sqrt() < ENERGY_FLOOR:
        return wav
    loudness = integrated_loudness(wav, sample_rate)
    if loudness == -math.inf:  # all below the absolute gate (energy the K-weighting removes): nothing to match
        return wav
    wav = wav * 10 ** ((lufs - loudness) / 20)
    return torch.tanh(wav) if compress else wav
