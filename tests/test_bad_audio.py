"""Bad audio never stops a dataset: property tests over real files for the audio loader and both training data paths.

Hypothesis draws files (good ones, random bytes, truncated WAV/FLAC, empty files, zero frames, NaN/inf samples,
sample rates out of range, 8 channels, a directory named like an audio file), writes them with soundfile and checks
that each is read correctly or skipped and counted with its reason, by `read_checked`, by codec training (probe and
SegmentDataset) and by LM training (the manifest and the token cache the frozen codec builds from it).
"""
from __future__ import annotations

import io
import json
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.train.data import SegmentDataset
from infra.audio import BadAudio, read_checked
from infra.batches import StepBatchSampler
from infra.manifest import check_headers, list_audio_paths, probe_audio
from musicgen.train.manifest import manifest_records
from musicgen.train.token_cache import TokenCache, build_token_cache

from codec_audio import tiny_codec

MODEL_RATE = 8000
HEADER_REASONS = {"not a file", "unreadable", "sample rate out of range", "no samples"}
SAMPLE_REASONS = {"cannot mix channels", "decoding failed", "non-finite samples"}
FEW = settings(max_examples=30, deadline=None)


@dataclass(frozen=True)
class Case:
    """One file a strategy drew and what reading it must give.

    `outcome`: "good" (reads as `samples`), "prefix" (reads as a prefix of `samples`, or is skipped: a truncated
    file), "any" (reads as finite audio, or is skipped: random bytes), or the reason it is skipped for.
    """

    suffix: str
    content: bytes | None       # None: a directory of that name
    outcome: str
    samples: np.ndarray | None  # float32 [N, C] written at sample_rate
    sample_rate: int = MODEL_RATE

    def expected(self, channels: int) -> str:
        """The outcome read as `channels` channels: 8 channels cannot become 2."""
        written = None if self.samples is None else self.samples.shape[1]
        if self.outcome == "good" and written not in (1, channels) and channels != 1:
            return "cannot mix channels"
        return self.outcome


def encoded(samples: np.ndarray, sample_rate: int, format: str = "WAV", subtype: str = "FLOAT") -> bytes:
    """The bytes of a soundfile written to memory."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format=format, subtype=subtype)
    return buffer.getvalue()


@st.composite
def noise(draw, channels: int, sample_rate: int = MODEL_RATE) -> np.ndarray:
    """float32 [N, channels] of uniform noise in [-0.5, 0.5], 10 to 100 ms long."""
    frames = round(draw(st.floats(0.01, 0.1)) * sample_rate)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.uniform(-0.5, 0.5, (frames, channels)).astype(np.float32)


@st.composite
def good_files(draw) -> Case:
    sample_rate = draw(st.sampled_from([1_000, 8_000, 44_100, 768_000]))
    samples = draw(noise(draw(st.sampled_from([1, 2])), sample_rate))
    if draw(st.booleans()) and sample_rate <= 655_350:  # FLAC's highest rate
        return Case(".flac", encoded(samples, sample_rate, "FLAC", "PCM_24"), "good", samples, sample_rate)
    return Case(".wav", encoded(samples, sample_rate), "good", samples, sample_rate)


@st.composite
def truncated_files(draw) -> Case:
    """A WAV or FLAC cut short, or a FLAC whose header claims up to 2**36 - 1 frames (a corrupt frame count)."""
    samples = draw(noise(1))
    suffix, content = draw(st.sampled_from([(".wav", encoded(samples, MODEL_RATE, "WAV", "PCM_24")),
                                            (".flac", encoded(samples, MODEL_RATE, "FLAC", "PCM_24"))]))
    if suffix == ".flac" and draw(st.booleans()):
        claimed = draw(st.integers(len(samples) + 1, 2**36 - 1))
        streaminfo = bytearray(content[18:26])  # after "fLaC", the block header and the frame sizes
        packed = int.from_bytes(streaminfo, "big") & ~(2**36 - 1) | claimed  # the low 36 bits count the frames
        return Case(suffix, content[:18] + packed.to_bytes(8, "big") + content[26:], "prefix", samples)
    return Case(suffix, content[:draw(st.integers(0, len(content) - 1))], "prefix", samples)


@st.composite
def non_finite_files(draw) -> Case:
    samples = draw(noise(draw(st.sampled_from([1, 2]))))
    positions = draw(st.lists(st.integers(0, samples.size - 1), min_size=1, max_size=5))
    samples.reshape(-1)[positions] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return Case(".wav", encoded(samples, MODEL_RATE), "non-finite samples", samples)


@st.composite
def odd_rate_files(draw) -> Case:
    sample_rate = draw(st.sampled_from([1, 2, 999, 768_001, 1_000_000]))
    return Case(".wav", encoded(np.zeros((64, 1), np.float32), sample_rate), "sample rate out of range", None)


@st.composite
def eight_channel_files(draw) -> Case:
    samples = draw(noise(8))
    return Case(".wav", encoded(samples, MODEL_RATE), "good", samples)


def audio_files() -> st.SearchStrategy[Case]:
    """Any kind of file a dataset may hold."""
    return st.one_of(
        good_files(), truncated_files(), non_finite_files(), odd_rate_files(), eight_channel_files(),
        st.builds(Case, st.sampled_from([".wav", ".flac", ".ogg", ".mp3"]), st.binary(max_size=2000),
                  st.just("any"), st.none()),
        st.builds(Case, st.sampled_from([".wav", ".flac"]), st.just(b""), st.just("unreadable"), st.none()),
        st.just(Case(".wav", encoded(np.zeros((0, 1), np.float32), MODEL_RATE), "no samples", None)),
        st.just(Case(".wav", None, "not a file", None)),
    )


def write_case(folder: Path, name: str, case: Case) -> Path:
    path = folder / f"{name}{case.suffix}"
    if case.content is None:
        path.mkdir()
    else:
        path.write_bytes(case.content)
    return path


def mixed(samples: np.ndarray, channels: int) -> np.ndarray:
    """[N, C] -> [channels, N]: the mean for mono, mono repeated, or as it is."""
    if channels == 1:
        return samples.mean(axis=1)[None]
    return np.repeat(samples.T, channels, axis=0) if samples.shape[1] == 1 else samples.T


@FEW
@given(case=audio_files(), channels=st.sampled_from([1, 2]))
def test_a_file_is_read_correctly_or_skipped_with_its_reason(case, channels):
    with tempfile.TemporaryDirectory() as folder:
        path = write_case(Path(folder), "clip", case)
        expected = case.expected(channels)
        try:
            wav = read_checked(path, case.sample_rate, channels)
        except BadAudio as error:
            assert expected in ("prefix", "any", error.reason), (expected, str(error))
            return
    assert expected in ("good", "prefix", "any"), f"expected a skip for {expected}"
    assert wav.dtype == torch.float32 and wav.shape[0] == channels and torch.isfinite(wav).all()
    if expected != "any":
        written = mixed(case.samples, channels)
        assert wav.shape[1] == written.shape[1] or expected == "prefix" and wav.shape[1] < written.shape[1]
        np.testing.assert_allclose(wav.numpy(), written[:, :wav.shape[1]], atol=1e-6)


def write_dataset(folder: Path, cases: list[Case]) -> list[Path]:
    """Every case as c{index}{suffix}, listed in a manifest (so that a directory is listed too); the listed paths."""
    paths = [write_case(folder, f"c{index}", case) for index, case in enumerate(cases)]
    manifest = folder / "data.jsonl"
    manifest.write_text("".join(json.dumps({"path": path.name}) + "\n" for path in paths))
    return list_audio_paths(manifest)


def skipped_paths(files: list[str]) -> dict[str, str]:
    """{path: reason} from SkippedFiles.files, entries "path (reason: detail)" or "path (reason)"."""
    split = [text.split(" (", 1) for text in files]
    return {path: rest.removesuffix(")").split(": ", 1)[0] for path, rest in split}


@FEW
@given(cases=st.lists(audio_files(), min_size=1, max_size=6), channels=st.sampled_from([1, 2]))
def test_codec_training_reads_good_files_and_counts_the_bad_ones(cases, channels):
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = write_dataset(Path(folder), cases)
        entries, skipped = check_headers(paths)
        found = skipped_paths(skipped.files)
        for path, case in zip(paths, cases):
            expected, reason = case.expected(channels), found.get(str(path))
            if expected in HEADER_REASONS:
                assert reason == expected
            elif expected in ("good", *SAMPLE_REASONS):
                assert reason is None
        assert sum(skipped.reasons.values()) == len(skipped) == len(paths) - len(entries)
        if not entries:
            with pytest.raises(ValueError, match=f"none of the {len(paths)} audio files could be read"):
                probe_audio(paths)
            return
        dataset = SegmentDataset(entries, MODEL_RATE, channels, segment_samples=200, seed=len(cases))
        try:
            segments = [dataset[index] for index in range(6)]
        except ValueError as error:
            assert not any(case.expected(channels) == "good" for case in cases)
            assert f"none of the {len(entries)} audio files could be decoded" in str(error)
            return
        assert all(segment.shape == (channels, 200) and torch.isfinite(segment).all() for segment in segments)
        for path, reason in skipped_paths(dataset.skipped.files).items():
            outcome = cases[paths.index(Path(path))].expected(channels)
            assert outcome in ("prefix", "any", reason), (outcome, reason)


def long_bad_file(path: Path, kind: str) -> None:
    """30 s that header probing accepts but reading refuses (path.wav of NaN samples, or path.flac cut in half)."""
    if kind == "nan":
        soundfile.write(path.with_suffix(".wav"), np.full((30 * MODEL_RATE, 1), np.nan, np.float32), MODEL_RATE,
                        subtype="FLOAT")
        return
    noise_samples = np.random.default_rng(0).uniform(-0.5, 0.5, (30 * MODEL_RATE, 1)).astype(np.float32)
    content = encoded(noise_samples, MODEL_RATE, "FLAC", "PCM_24")
    path.with_suffix(".flac").write_bytes(content[:len(content) // 2])


@pytest.mark.parametrize("kind", ["nan", "truncated"])
def test_one_long_bad_file_never_stops_codec_training(tmp_path, kind):
    good = np.random.default_rng(1).uniform(-0.5, 0.5, (MODEL_RATE // 10, 1)).astype(np.float32)
    soundfile.write(tmp_path / "good.wav", good, MODEL_RATE, subtype="FLOAT")
    long_bad_file(tmp_path / "bad", kind)
    dataset = SegmentDataset(probe_audio(list_audio_paths(tmp_path)), MODEL_RATE, 1, segment_samples=400)
    with pytest.warns(UserWarning, match="failed to decode: 1 so far"):
        segments = [dataset[index] for index in range(40)]
    assert all(torch.isfinite(segment).all() for segment in segments)
    crops = [torch.from_numpy(good[first:first + 400, 0]) for first in range(good.shape[0] - 400 + 1)]
    assert sum(any(torch.equal(segment[0], crop) for crop in crops) for segment in segments) >= 30
    assert list(dataset.skipped.reasons) == ["non-finite samples" if kind == "nan" else "decoding failed"]


def test_an_all_bad_codec_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "random.wav").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "folder.wav").mkdir()
    soundfile.write(tmp_path / "one_hertz.wav", np.zeros((64, 1), np.float32), 1)
    soundfile.write(tmp_path / "megahertz.wav", np.zeros((64, 1), np.float32), 1_000_000)
    (tmp_path / "data.jsonl").write_text("".join(json.dumps({"path": path.name}) + "\n" for path in tmp_path.iterdir()))
    with pytest.raises(ValueError, match="none of the 4 audio files could be read: 2 sample rate out of range, "
                                         "1 (unreadable, 1 not a file|not a file, 1 unreadable)"):
        probe_audio(list_audio_paths(tmp_path / "data.jsonl"))

    soundfile.write(tmp_path / "nan.wav", np.full((MODEL_RATE, 2), np.nan, np.float32), MODEL_RATE, subtype="FLOAT")
    soundfile.write(tmp_path / "surround.wav", np.zeros((MODEL_RATE, 8), np.float32), MODEL_RATE)
    dataset = SegmentDataset(probe_audio([tmp_path / "nan.wav", tmp_path / "surround.wav"]), MODEL_RATE, 2, 400)
    decoded = ("none of the 2 audio files could be decoded: "
               "1 (non-finite samples, 1 cannot mix|cannot mix channels, 1 non-finite)")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=decoded):
        dataset[0]


def test_failures_are_summarised_not_warned_one_by_one(tmp_path):
    stereo = np.random.default_rng(2).uniform(-0.5, 0.5, (MODEL_RATE, 2)).astype(np.float32)
    soundfile.write(tmp_path / "stereo.wav", stereo, MODEL_RATE)
    for index in range(6):
        soundfile.write(tmp_path / f"surround{index}.wav", np.zeros((MODEL_RATE, 8), np.float32), MODEL_RATE)
    dataset = SegmentDataset(probe_audio(list_audio_paths(tmp_path)), MODEL_RATE, 2, segment_samples=400)
    sampler = StepBatchSampler(batch_size=6, start_step=0, total_steps=10)
    with pytest.warns(UserWarning) as warned:
        batches = list(torch.utils.data.DataLoader(dataset, batch_sampler=sampler))
    assert all(batch.shape == (6, 2, 400) and (batch.abs().sum(dim=(1, 2)) > 0).all() for batch in batches)
    assert dataset.skipped.reasons == {"cannot mix channels": 6}
    assert [re.search(r"(\d+) so far", str(warning.message))[1] for warning in warned] == ["1", "2", "4"]


@FEW
@given(cases=st.lists(audio_files(), min_size=1, max_size=6))
def test_the_manifest_lists_files_with_usable_headers_and_counts_the_others(cases):
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        paths = [write_case(Path(folder), f"c{index}", case) for index, case in enumerate(cases)]
        for index, path in enumerate(paths):
            path.with_suffix(".txt").write_text(f"caption {index}")
        try:
            listed = {Path(record["path"]).name: record["description"] for record in manifest_records(folder)}
        except ValueError as error:
            assert "no captioned, readable audio files" in str(error)
            listed = {}
        summary = " ".join(str(warning.message) for warning in warned)
    for index, (path, case) in enumerate(zip(paths, cases)):
        if case.outcome in ("good", *SAMPLE_REASONS):
            assert listed[path.name] == f"caption {index}"
        elif case.outcome in HEADER_REASONS - {"not a file"}:  # a directory is no audio file: not even looked at
            assert path.name not in listed and f"{path.name} ({case.outcome}" in summary


@pytest.fixture(scope="module")
def codec():
    return tiny_codec(MODEL_RATE)


@FEW
@given(cases=st.lists(audio_files(), min_size=1, max_size=6))
def test_the_token_cache_encodes_good_clips_with_their_captions_and_counts_the_bad(codec, cases):
    with tempfile.TemporaryDirectory() as folder:
        paths = [write_case(Path(folder), f"c{index}", case) for index, case in enumerate(cases)]
        entries = [{"path": str(path), "description": f"caption {index}"} for index, path in enumerate(paths)]
        build_token_cache(codec, entries, Path(folder) / "cache", shard_size=4, progress=False)
        try:
            cache = TokenCache(Path(folder) / "cache")
        except ValueError as error:
            assert "holds no clips" in str(error)
            assert not any(case.expected(codec.channels) == "good" for case in cases)
            return
        kept = [int(clip["description"].split()[-1]) for clip in cache.clips]
        assert kept == sorted(kept) and len(kept) + len(cache.skipped) == len(cases)
        assert all(index in kept for index, case in enumerate(cases) if case.expected(codec.channels) == "good")
        for position, index in enumerate(kept):
            assert cases[index].expected(codec.channels) in ("good", "prefix", "any")
            wav = read_checked(paths[index], MODEL_RATE, codec.channels)
            assert torch.equal(cache.codes(position), codec.encode(wav[None])[0])
        reasons = skipped_paths(cache.skipped.files)
        for index, case in enumerate(cases):
            if case.expected(codec.channels) not in ("good", "prefix", "any"):
                assert reasons[str(paths[index])] == case.expected(codec.channels)
        assert sum(cache.skipped.reasons.values()) == len(cache.skipped)
