"""Melody-conditioned LM training: a tiny LM fine-tuned with `add_melody` learns clips that share a caption and differ
only in their melody stems, so that greedy generation with each clip's melody gives back that clip's codes."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from lm_train_inputs import (
    CAPTIONS,
    CARD,
    NUM_CODEBOOKS,
    make_sources,
    train_config,
    train_in_process,
)

from infra.audio import read_audio, write_audio
from infra.checkpoints import latest_checkpoint, load_checkpoint
from infra.config import config_from_dict
from infra.train_log import read_jsonl
from musicgen import MusicGen
from musicgen.chroma import chroma, null_chroma
from musicgen.config import ChromaConfig
from musicgen.train.config import LMTrainConfig
from musicgen.train.melody import MelodyStems
from musicgen.train.segments import CaptionedSegments
from musicgen.train.setup import load_model
from musicgen.train.token_cache import TokenCache, write_token_cache

SAMPLE_RATE, HOP = 8000, 64                  # make_sources with ratios (8, 8): 125 codec frames/s
FRAMES = 6                                   # a window: 384 samples, 7 chroma frames
FRAME_RATE = SAMPLE_RATE / HOP
CHROMA = ChromaConfig(n_fft=256, hop_length=64)   # at 8 kHz: 31 Hz bins, a chroma frame every codec frame
ADD_MELODY = {"chroma_bins": 12, "n_fft": CHROMA.n_fft, "hop_length": CHROMA.hop_length}
CAPTION = CAPTIONS[0]
# Two notes each (MIDI D6 A6, A6 D6, F6 B6, B6 F6): two clips share their notes in another order. No C, whose pitch
# class (bin 0) is also the "no melody" chroma's.
MELODIES = [(86, 93), (93, 86), (89, 95), (95, 89)]


def notes_wav(notes: tuple[int, ...], samples: int) -> torch.Tensor:
    """Sine tones of MIDI `notes`, one after the other in equal parts: [1, samples] float32 at SAMPLE_RATE."""
    parts = []
    for index, note in enumerate(notes):
        length = samples * (index + 1) // len(notes) - samples * index // len(notes)
        frequency = 440.0 * 2 ** ((note - 69) / 12)
        parts.append(0.5 * torch.sin(2 * math.pi * frequency * torch.arange(length) / SAMPLE_RATE))
    return torch.cat(parts)[None]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("sources"), ratios=[8, 8])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """One clip per melody: random codes [K, FRAMES], the same caption, its stem written as a WAV of one window."""
    folder = tmp_path_factory.mktemp("stems")
    generator = torch.Generator().manual_seed(0)
    clips = []
    for index, notes in enumerate(MELODIES):
        stem = folder / f"clip_{index}.melody.wav"
        write_audio(stem, notes_wav(notes, FRAMES * HOP), SAMPLE_RATE)
        codes = torch.randint(0, CARD, (NUM_CODEBOOKS, FRAMES), generator=generator)
        clips.append((codes, {"path": str(stem), "description": CAPTION, "melody_path": str(stem)}))
    return clips


@pytest.fixture(scope="module")
def plain(sources, clips, tmp_path_factory):
    """A model without melody conditioning, 2 steps into training on the clips (what add_melody fine-tunes)."""
    folder = tmp_path_factory.mktemp("plain")
    write_token_cache(folder / "tokens" / "train", clips, CARD, frame_rate=FRAME_RATE, shard_size=3)
    return train_in_process(train_config(sources, folder / "run", folder / "tokens", frames=FRAMES,
                                         frame_rate=FRAME_RATE, steps=2, checkpoint_every=2))


def melody_config(sources, tmp_path, init_from, *, chroma_frames: int = 0, **overrides) -> dict:
    """A fine-tune of init_from with add_melody (chroma_frames rows; 0: the longest window's) over tmp_path/tokens, on
    windows of FRAMES frames."""
    config = train_config(sources, tmp_path / "run", tmp_path / "tokens", frames=FRAMES, frame_rate=FRAME_RATE,
                          add_melody={**ADD_MELODY, "chroma_frames": chroma_frames}, **overrides)
    for key in ("codec", "text_encoder", "model"):
        del config[key]
    return {**config, "init_from": str(init_from)}


def stem_chroma(entry: dict) -> torch.Tensor:
    """The one-hot chroma [T_c, 12] of a clip's whole stem (one window long)."""
    return chroma(read_audio(entry["melody_path"]), sample_rate=SAMPLE_RATE, n_fft=CHROMA.n_fft,
                  hop_length=CHROMA.hop_length, bins=12)[0]


def test_add_melody_keeps_the_checkpoint_and_starts_the_chroma_projection_at_zero(sources, plain, tmp_path):
    tuned = load_model(config_from_dict(LMTrainConfig, melody_config(sources, tmp_path, plain)))
    weights, before = tuned.lm.state_dict(), MusicGen.from_pretrained(plain, device="cpu").lm.state_dict()
    assert set(weights) - set(before) == {"chroma_projection.weight", "chroma_projection.bias"}
    assert all(torch.equal(weights[name], tensor) for name, tensor in before.items())
    assert not weights["chroma_projection.weight"].any() and not weights["chroma_projection.bias"].any()
    # chroma_frames 0: the chroma of the longest window (62 frames of 64 samples, a chroma frame every 64) is not tiled
    assert tuned.max_frames == 62 and tuned.lm.config.chroma_frames == 63
    assert tuned.config.lm is tuned.lm.config and tuned.config.chroma == CHROMA
    # Every melody gives the same inputs until the projection is trained.
    condition, mask = tuned.conditioner([CAPTION, CAPTION])
    melodies = torch.stack([null_chroma(1, 7, 12)[0], null_chroma(1, 7, 12)[0].roll(3, dims=-1)])
    sequence = torch.randint(0, CARD, (1, NUM_CODEBOOKS, 8)).expand(2, -1, -1)
    logits = tuned.lm(sequence, condition, mask, chroma=melodies)
    assert torch.equal(logits[0], logits[1])


def test_a_tiny_lm_learns_to_follow_each_clips_melody(sources, clips, plain, tmp_path):
    write_token_cache(tmp_path / "tokens" / "train", clips, CARD, frame_rate=FRAME_RATE, shard_size=3)
    # 7 chroma rows: a window's chroma as it is (the default, the longest window's 63 rows, tiles it and takes longer
    # to tell the two clips of the same notes in another order apart).
    export = train_in_process(melody_config(sources, tmp_path, plain, chroma_frames=7, steps=100, checkpoint_every=100))

    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert log[0]["loss"] > 1.5 and log[-1]["loss"] < 0.01  # one caption, four sequences: only the melody tells
    model = MusicGen.from_pretrained(export, device="cpu")
    assert (model.lm.config.chroma_bins, model.lm.config.chroma_frames) == (12, 7) and model.config.chroma == CHROMA
    trained = load_checkpoint(latest_checkpoint(tmp_path / "run"))["model"]
    assert all(torch.equal(tensor, trained[f"lm.{name}"]) for name, tensor in model.lm.state_dict().items())
    # Greedy generation from the one caption with each clip's melody gives back that clip's codes, in any order.
    stems = [read_audio(entry["melody_path"]) for _, entry in clips]
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        _, codes = model.generate_with_chroma([CAPTION] * 4, [stems[index] for index in order], SAMPLE_RATE,
                                              duration=FRAMES / FRAME_RATE, use_sampling=False, cfg_coef=1.0,
                                              return_codes=True)
        assert torch.equal(codes, torch.stack([clips[index][0] for index in order]))


def test_dropped_melodies_are_the_no_melody_chroma_and_leave_the_windows_as_they_were(clips, tmp_path):
    cache = write_token_cache(tmp_path / "tokens", clips, CARD, frame_rate=FRAME_RATE)
    stems = MelodyStems(cache, sample_rate=SAMPLE_RATE, hop_length=HOP, settings=CHROMA, bins=12)
    without = CaptionedSegments(cache, FRAMES, CARD, seed=3, condition_dropout=0.3)
    with_melody = CaptionedSegments(cache, FRAMES, CARD, seed=3, condition_dropout=0.3, melody=stems,
                                    melody_dropout=0.5)
    silence, seen = null_chroma(1, 7, 12)[0], {"null condition": 0, "melody": 0, "dropped melody": 0}
    for index in range(60):
        codes, caption, start = without[index]
        codes_too, caption_too, start_too, window_chroma = with_melody[index]
        assert torch.equal(codes, codes_too) and (caption, start) == (caption_too, start_too)
        clip = next(number for number, (clip_codes, _) in enumerate(clips) if torch.equal(clip_codes, codes))
        if caption == "":
            assert torch.equal(window_chroma, silence)   # condition dropout takes the melody too
            seen["null condition"] += 1
        elif torch.equal(window_chroma, stem_chroma(clips[clip][1])):
            seen["melody"] += 1
        else:
            assert torch.equal(window_chroma, silence)
            seen["dropped melody"] += 1
    assert min(seen.values()) >= 5, seen
    # A window from frame 3 reads the stem's second half (A6: pitch class 9), then silence past the stem's end.
    late = stems.window(0, 3, FRAMES)
    assert late[:4].argmax(-1).tolist() == [9] * 4 and torch.equal(late[-2:], silence[-2:])


def test_manifest_stems_resolve_against_its_folder_and_bad_inputs_fail_clearly(sources, clips, plain, tmp_path):
    rows = []
    for index, (_, entry) in enumerate(clips):
        shutil.copy(entry["melody_path"], tmp_path / f"{index}.wav")
        rows.append({"path": f"{index}.wav", "description": CAPTION, "melody_path": f"{index}.wav"})
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = melody_config(sources, tmp_path, plain, steps=1, checkpoint_every=1,
                           data={"manifest": str(manifest), "melody_dropout": 0.5})
    export = train_in_process(config)
    assert TokenCache(tmp_path / "tokens" / "train").clips[0]["melody_path"] == str(tmp_path / "0.wav")

    with pytest.raises(ValueError, match="melody-conditioned already .* leave add_melody out"):
        train_in_process({**config, "init_from": str(export), "run_dir": str(tmp_path / "again")})
    rows[2].pop("melody_path")
    (tmp_path / "lacking.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    lacking = {**config, "run_dir": str(tmp_path / "lacking"),
               "data": {**config["data"], "manifest": str(tmp_path / "lacking.jsonl"),
                        "cache_dir": str(tmp_path / "lacking_tokens")}}
    with pytest.raises(ValueError, match=r"1 of the 4 clips .* have no melody_path \(first: .*2\.wav\).*--write-melody"):
        train_in_process(lacking)
    with pytest.raises(ValueError, match="add_melody.chroma_bins must be an integer >= 1, got 0"):
        train_in_process({**config, "add_melody": {**ADD_MELODY, "chroma_bins": 0}})
    without_melody = {key: value for key, value in config.items() if key != "add_melody"}
    with pytest.raises(ValueError, match="data.melody_dropout drops the melody of a melody-conditioned LM"):
        train_in_process({**without_melody, "run_dir": str(tmp_path / "plain_run")})
