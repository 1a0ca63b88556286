"""LM training on stereo audio (`stereo: true`): the mono codec tokenizes each channel, the codes interleaved L0 R0 L1
R1 ...; a tiny LM learns each caption's stereo sequence, and its export generates stereo audio."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import soundfile
import torch
from lm_train_inputs import (
    CAPTIONS,
    NUM_CODEBOOKS,
    make_sources,
    train_config,
    train_in_process,
)

from codec import Codec
from codec.stereo import STEREO_FILE, InterleavedStereoCodec
from infra.audio import read_audio
from infra.train_log import read_jsonl
from musicgen import MusicGen
from musicgen.train.token_cache import TokenCache

FRAMES = 6
SAMPLE_RATE, HOP = 8000, 8                           # make_sources' codec: 1000 frames/s
DELAYS = [0, 0, 1, 1, 2, 2]                          # MusicGen stereo's: a left/right pair shares a delay


def stereo_clips() -> torch.Tensor:
    """One stereo clip of FRAMES frames per caption, other noise on each channel: [len(CAPTIONS), 2, FRAMES * hop]."""
    return 0.5 * torch.randn(len(CAPTIONS), 2, FRAMES * HOP, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """make_sources' text encoder, and its mono codec with codebooks k-means fitted to the channels of `stereo_clips`
    (a random codebook gives these clips nearly constant codes, which the text alone would have to tell apart)."""
    folder = tmp_path_factory.mktemp("sources")
    codec_folder, text_encoder = make_sources(folder)
    torch.manual_seed(0)
    codec = Codec(dataclasses.replace(Codec.from_pretrained(codec_folder).config, kmeans_iters=10)).train()
    with torch.no_grad():
        codec(stereo_clips().flatten(0, 1)[:, None])
    codec.eval().save_pretrained(folder / "fitted_codec")
    return folder / "fitted_codec", text_encoder


def write_stereo_clips(folder: Path) -> Path:
    """The clips of `stereo_clips` as stereo files, and their manifest (one caption each)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (caption, clip) in enumerate(zip(CAPTIONS, stereo_clips())):
        soundfile.write(folder / f"{index}.wav", clip.T.numpy(), SAMPLE_RATE, subtype="FLOAT")
        lines.append(json.dumps({"path": f"{index}.wav", "description": caption}))
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "train.jsonl"


def stereo_config(sources: tuple[Path, Path], tmp_path: Path, **overrides) -> dict:
    """A from-scratch stereo run over the files of `write_stereo_clips`: 2K codebooks, MusicGen stereo's delays."""
    config = train_config(sources, tmp_path / "run", tmp_path / "tokens", "delay", FRAMES, stereo=True,
                          data={"manifest": str(write_stereo_clips(tmp_path / "audio"))}, **overrides)
    config["model"]["lm"]["num_codebooks"] = 2 * NUM_CODEBOOKS
    config["model"]["pattern"]["options"] = {"delays": DELAYS}
    return config


def test_tiny_lm_learns_each_captions_stereo_sequence(sources, tmp_path):
    export = train_in_process(stereo_config(sources, tmp_path, steps=80, checkpoint_every=80))

    # The cache holds each file's channels through the mono codec, interleaved.
    cache = TokenCache(tmp_path / "tokens" / "train")
    mono = Codec.from_pretrained(sources[0]).eval()
    clips = [cache.codes(index) for index in range(len(cache))]
    for index, codes in enumerate(clips):
        wav = read_audio(tmp_path / "audio" / f"{index}.wav")
        assert codes.shape == (2 * NUM_CODEBOOKS, FRAMES)
        assert torch.equal(codes[0::2], mono.encode(wav[None, :1])[0])
        assert torch.equal(codes[1::2], mono.encode(wav[None, 1:])[0])
    assert not torch.equal(clips[0][0::2], clips[0][1::2])

    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert log[0]["loss"] > 2.5 and log[-1]["loss"] < 0.05      # about ln(16) at the start
    assert {f"ce/{k}" for k in range(2 * NUM_CODEBOOKS)} <= set(log[-1])

    # The export is a stereo MusicGen: greedy generation from each caption gives back its sequence, as two channels.
    assert (export / "codec" / STEREO_FILE).is_file()
    model = MusicGen.from_pretrained(export, device="cpu")
    assert isinstance(model.codec, InterleavedStereoCodec) and model.config.pattern.options == {"delays": DELAYS}
    wav, codes = model.generate(CAPTIONS, duration=FRAMES / model.frame_rate, use_sampling=False, cfg_coef=1.0,
                                return_codes=True)
    assert torch.equal(codes, torch.stack(clips))
    assert wav.shape == (len(CAPTIONS), 2, FRAMES * HOP)
    assert torch.allclose(wav, model.codec.decode(codes), atol=1e-5)


def test_stereo_settings_that_cannot_work_are_clear_errors(sources, tmp_path):
    config = stereo_config(sources, tmp_path, steps=1)
    with pytest.raises(ValueError, match="stereo runs the mono codec of the `codec` folder on each channel"):
        train_in_process({key: value for key, value in config.items() if key not in ("codec", "text_encoder", "model")}
                         | {"init_from": str(tmp_path)})
    mono_lm = {**config, "model": {**config["model"], "lm": {**config["model"]["lm"], "num_codebooks": NUM_CODEBOOKS}}}
    with pytest.raises(ValueError, match=f"the codec has K={2 * NUM_CODEBOOKS} codebooks .* the LM expects "
                                         f"K={NUM_CODEBOOKS}"):
        train_in_process(mono_lm)
    InterleavedStereoCodec(Codec.from_pretrained(sources[0])).save_pretrained(tmp_path / "stereo_codec")
    with pytest.raises(ValueError, match="wraps a mono codec"):
        train_in_process({**config, "run_dir": str(tmp_path / "other"), "codec": str(tmp_path / "stereo_codec")})
