"""The embedded default model in checkpoints/default: it loads offline and generates, from Python and the CLI."""
import json
import subprocess
import sys

import soundfile
import torch

from musicgen import MusicGen
from musicgen.api import DEFAULT_CHECKPOINT

PROMPT = "a slow flute melody in D minor"


def test_shipped_checkpoint_generates_one_second():
    model = MusicGen.from_pretrained(device="cpu")
    wav, codes = model.generate([PROMPT, "an upbeat piano tune at 140 BPM in A major with drums"], duration=1.0,
                                seed=0, return_codes=True)
    assert model.sample_rate == 16000 and model.frame_rate == 50
    assert wav.shape == (2, 1, 16000) and codes.shape == (2, 4, 50)
    assert torch.isfinite(wav).all() and wav.abs().max() > 0.01
    assert ((codes >= 0) & (codes < model.codec.cardinality)).all()
    assert model.config.pattern.name == "delay" and model.lm.config.beat_clock  # the BPM in the second prompt sets a beat


def test_cli_uses_the_embedded_model_by_default(tmp_path):
    result = subprocess.run([sys.executable, "-m", "musicgen.cli", "--text", PROMPT, "--duration", "1", "--quiet"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    audio, sample_rate = soundfile.read(tmp_path / record["path"])
    assert record["prompt"] == PROMPT and sample_rate == record["sample_rate"] == 16000
    assert len(audio) == 16000


def test_shipped_checkpoint_stays_small():
    size = sum(path.stat().st_size for path in DEFAULT_CHECKPOINT.parent.rglob("*") if path.is_file())
    assert size <= 60 * 2**20


def test_shipped_checkpoint_takes_a_melody():
    model = MusicGen.from_pretrained(device="cpu")
    assert model.lm.config.melody and model.lm.config.chroma_stride > 0
    time = torch.arange(2 * 16000) / 16000
    tune = torch.sin(2 * torch.pi * torch.where(time < 1, 440.0, 587.33) * time)[None] * 0.3  # A4 then D5
    wav = model.generate_with_chroma([PROMPT], [tune], 16000, duration=1.0, seed=0)
    assert wav.shape == (1, 1, 16000) and torch.isfinite(wav).all() and wav.abs().max() > 0.01
