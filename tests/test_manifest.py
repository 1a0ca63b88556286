"""`musicgen-manifest`: a JSONL manifest from a folder of audio files with sidecar captions, and a held-out split."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from infra.manifest import read_manifest
from musicgen.train.manifest import build_manifest, main


def write_wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(8000 * seconds), np.float32), 8000)


def files(manifest: Path) -> set[Path]:
    return {Path(record["path"]).resolve() for record in read_manifest(manifest)}


@pytest.fixture
def folder(tmp_path):
    """Captioned clips (a .txt, a .json with metadata, one in a subfolder), one without caption, two that are left out."""
    songs = tmp_path / "songs"
    write_wav(songs / "a.wav", 1.0)
    (songs / "a.txt").write_text("slow piano in C major\n")
    write_wav(songs / "b.flac", 0.5)
    (songs / "b.json").write_text(json.dumps({"description": "fast drums", "bpm": 140}))
    write_wav(songs / "deep" / "c.wav", 0.25)
    (songs / "deep" / "c.txt").write_text("sad strings")
    write_wav(songs / "uncaptioned.wav", 0.25)
    (songs / "broken.wav").write_bytes(b"not audio")
    (songs / "broken.txt").write_text("never read")
    write_wav(songs / "bad_sidecar.wav", 0.25)
    (songs / "bad_sidecar.json").write_text('{"caption": "no description key"}')
    return songs


def test_manifest_lists_captioned_readable_audio(folder, tmp_path):
    with pytest.warns(UserWarning, match="3 audio files were left out") as warned:
        assert build_manifest(folder, tmp_path / "out" / "train.jsonl") == (3, 0)
    message = str(warned[0].message)
    assert "uncaptioned.wav (no .txt or .json caption)" in message and "broken.wav (unreadable" in message
    assert 'bad_sidecar.wav' in message and '"description" string' in message

    raw = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert all(not Path(record["path"]).is_absolute() for record in raw)   # relative: the pair can move together
    records = {Path(record["path"]).name: record for record in read_manifest(tmp_path / "out" / "train.jsonl")}
    assert sorted(records) == ["a.wav", "b.flac", "c.wav"]
    assert Path(records["c.wav"]["path"]).resolve() == (folder / "deep" / "c.wav").resolve()
    assert records["a.wav"]["description"] == "slow piano in C major" and records["a.wav"]["duration"] == 1.0
    assert records["b.flac"]["description"] == "fast drums" and records["b.flac"]["bpm"] == 140


def test_held_out_split_is_seeded_and_disjoint(folder, tmp_path):
    with pytest.warns(UserWarning):
        counts = build_manifest(folder, tmp_path / "train.jsonl", 0.34, tmp_path / "held" / "valid.jsonl", seed=3)
    assert counts == (2, 1)
    train, valid = (files(tmp_path / name) for name in ("train.jsonl", "held/valid.jsonl"))
    assert not train & valid and all(path.is_file() for path in train | valid)
    with pytest.warns(UserWarning):
        build_manifest(folder, tmp_path / "again.jsonl", 0.34, tmp_path / "again_valid.jsonl", seed=3)
    assert files(tmp_path / "again_valid.jsonl") == valid


def test_command_prints_counts_and_fails_clearly(folder, tmp_path, capsys):
    with pytest.warns(UserWarning):
        main([str(folder), "--out", str(tmp_path / "m.jsonl")])
    assert json.loads(capsys.readouterr().out)["clips"] == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no captioned, readable audio files"):
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "e.jsonl")])
    with pytest.raises(SystemExit, match="needs valid_out"):
        main([str(folder), "--out", str(tmp_path / "m.jsonl"), "--valid-fraction", "0.5"])
    with pytest.raises(SystemExit, match="not a folder"):
        main([str(tmp_path / "missing"), "--out", str(tmp_path / "m.jsonl")])
