"""The token cache: real audio tokenized by a real (tiny, random) codec, resume, sharing between ranks, windows."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from infra.audio import read_audio
from musicgen.train.segments import CaptionedSegments, drop_words
from musicgen.train.token_cache import TokenCache, build_token_cache, shard_name, write_token_cache

from codec_audio import tiny_codec

SAMPLE_RATE, HOP = 8000, 8


@pytest.fixture(scope="module")
def codec():
    return tiny_codec(SAMPLE_RATE)


@pytest.fixture
def entries(tmp_path):
    """Seven clips of noise (24 to 72 frames) with captions and metadata, and one file that is not audio."""
    rng = np.random.default_rng(0)
    records = []
    for index in range(7):
        path = tmp_path / f"clip{index}.wav"
        soundfile.write(path, 0.3 * rng.standard_normal(HOP * (24 + 8 * index)).astype(np.float32), SAMPLE_RATE)
        records.append({"path": str(path), "description": f"clip number {index}", "bpm": 60 + index})
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    records.insert(3, {"path": str(tmp_path / "broken.wav"), "description": "broken"})
    return records


def test_cache_holds_the_codecs_codes_and_names_skipped_files(codec, entries, tmp_path):
    build_token_cache(codec, entries, tmp_path / "cache", shard_size=3, progress=False)
    cache = TokenCache(tmp_path / "cache")

    readable = [entry for entry in entries if "broken" not in entry["path"]]
    assert len(cache) == len(readable)
    assert len(cache.skipped) == 1 and "broken.wav" in cache.skipped.files[0]
    for index, entry in enumerate(readable):
        expected = codec.encode(read_audio(entry["path"], SAMPLE_RATE, 1)[None])[0]
        assert torch.equal(cache.codes(index), expected)
        assert cache.description(index) == entry["description"] and cache.clips[index]["bpm"] == entry["bpm"]
    assert np.load(tmp_path / "cache" / f"{shard_name(0)}.npy").dtype == np.int16


def test_skipped_files_of_an_earlier_build_are_counted_as_unreadable(codec, entries, tmp_path):
    build_token_cache(codec, entries, tmp_path / "cache", shard_size=3, progress=False)
    index_path = tmp_path / "cache" / f"{shard_name(1)}.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({"clips": index["clips"], "skipped": index["skipped"]}))  # no skip_reasons yet
    cache = TokenCache(tmp_path / "cache")
    assert cache.skipped.reasons == {"unreadable": 1} and "broken.wav (unreadable" in cache.skipped.files[0]


def test_an_interrupted_build_resumes_at_the_missing_shards(codec, entries, tmp_path):
    build_token_cache(codec, entries, tmp_path / "cache", shard_size=3, progress=False)
    shards = sorted((tmp_path / "cache").glob("shard_*.npy"))
    before = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in shards}
    shards[1].unlink()                               # as if the build had been stopped while encoding shard 1
    with pytest.raises(ValueError, match="incomplete: 1 of 3 shards are missing"):
        TokenCache(tmp_path / "cache")

    build_token_cache(codec, entries, tmp_path / "cache", shard_size=3, progress=False)
    after = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in shards}
    assert after[shards[0].name] == before[shards[0].name] and after[shards[2].name] == before[shards[2].name]
    assert after[shards[1].name][1] == before[shards[1].name][1]
    assert len(TokenCache(tmp_path / "cache")) == 7


def test_ranks_share_the_build(codec, entries, tmp_path):
    build_token_cache(codec, entries, tmp_path / "one", shard_size=2, progress=False)
    build_token_cache(codec, entries, tmp_path / "two", shard_size=2, progress=False, rank=1, world_size=2)
    assert sorted(path.name for path in (tmp_path / "two").glob("*.npy")) == [f"{shard_name(1)}.npy", f"{shard_name(3)}.npy"]
    build_token_cache(codec, entries, tmp_path / "two", shard_size=2, progress=False, rank=0, world_size=2)
    one, two = TokenCache(tmp_path / "one"), TokenCache(tmp_path / "two")
    assert one.clips == two.clips and all(torch.equal(one.codes(i), two.codes(i)) for i in range(len(one)))


def test_a_folder_of_another_build_is_refused(codec, entries, tmp_path):
    build_token_cache(codec, entries[:2], tmp_path / "cache", progress=False)
    with pytest.raises(ValueError, match="another build"):
        build_token_cache(codec, entries, tmp_path / "cache", progress=False)
    with pytest.raises(ValueError, match="no clips to tokenize"):
        build_token_cache(codec, [], tmp_path / "empty", progress=False)


def test_windows_pad_with_the_special_token(tmp_path):
    codes = torch.arange(12).view(2, 6) % 16
    cache = write_token_cache(tmp_path / "cache", [(codes, {"description": "six frames"})], cardinality=16, frame_rate=50.0)
    assert torch.equal(cache.window(0, 2, 4, special_token=16), codes[:, 2:6])
    window = cache.window(0, 3, 5, special_token=16)
    assert torch.equal(window[:, :3], codes[:, 3:]) and (window[:, 3:] == 16).all()
    with pytest.raises(ValueError, match="outside clip 0 of 6 frames"):
        cache.codes(0, 4, 3)


def test_wide_codebooks_are_stored_as_int32(tmp_path):
    codes = torch.tensor([[0, 40000, 65535]])
    cache = write_token_cache(tmp_path / "cache", [(codes, {})], cardinality=65536, frame_rate=50.0)
    assert torch.equal(cache.codes(0), codes)


def test_segments_are_a_pure_function_of_the_index(tmp_path):
    generator = torch.Generator().manual_seed(0)
    clips = [(torch.randint(0, 16, (2, frames), generator=generator), {"description": f"a caption of clip {frames}"})
             for frames in (3, 10, 40)]
    cache = write_token_cache(tmp_path / "cache", clips, cardinality=16, frame_rate=50.0)
    segments = CaptionedSegments(cache, segment_frames=8, special_token=16, seed=1, condition_dropout=0.3, word_dropout=0.2)
    items = [segments[index] for index in range(300)]
    again = [segments[index] for index in range(300)]
    assert all(torch.equal(a[0], b[0]) and a[1:] == b[1:] for a, b in zip(items, again))
    assert 0.2 < sum(caption == "" for _, caption, _ in items) / len(items) < 0.4
    for codes, _, start in items:        # every window is a crop of some clip from `start`, padded with the special token
        length = int((codes[0] != 16).sum())
        assert (codes[:, length:] == 16).all()
        assert any(torch.equal(codes[:, :length], clip[:, start:start + length]) for clip, _ in clips)
    assert {start for _, _, start in items} == set(range(40 - 8 + 1))  # the long clip is cropped anywhere


def test_word_dropout_keeps_words_in_order():
    rng = np.random.default_rng(0)
    caption = "an upbeat piano tune at 140 BPM in A major"
    dropped = [drop_words(caption, 0.5, rng) for _ in range(200)]
    assert drop_words(caption, 0.0, rng) == caption
    assert 0.4 < np.mean([len(text.split()) for text in dropped]) / len(caption.split()) < 0.6
    assert all(" ".join(word for word in caption.split() if word in text.split()) == text for text in dropped)


def test_clip_start_probability_starts_windows_where_generation_starts(tmp_path):
    generator = torch.Generator().manual_seed(0)
    clips = [(torch.randint(0, 16, (2, 400), generator=generator), {"description": "one long clip"})]
    cache = write_token_cache(tmp_path / "cache", clips, cardinality=16, frame_rate=50.0)
    for probability, low, high in ((0.0, 0.0, 0.02), (0.5, 0.4, 0.6), (1.0, 1.0, 1.0)):
        segments = CaptionedSegments(cache, segment_frames=8, special_token=16, clip_start_probability=probability)
        at_start = np.mean([torch.equal(segments[index][0], clips[0][0][:, :8]) for index in range(400)])
        assert low <= at_start <= high, (probability, at_start)
    with pytest.raises(ValueError, match=r"clip_start_probability must be in \[0, 1\], got 1.5"):
        CaptionedSegments(cache, segment_frames=8, special_token=16, clip_start_probability=1.5)
