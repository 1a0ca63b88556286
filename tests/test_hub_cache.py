"""Models by hub id or audiocraft's short name, from a Hugging Face cache laid out here as huggingface_hub lays its
downloads (blobs, snapshot symlinks, refs/main); the cache is named by environment variables set after import."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from test_musicgen_hf import build_hf_musicgen

from musicgen import MusicGen
from musicgen.hub import SHORT_NAMES, checkpoint_folder, hub_cache

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_as_hub(folder: Path, cache: Path, repo_id: str) -> Path:
    """Move folder's files into cache as huggingface_hub's download of repo_id at COMMIT; the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in sorted(folder.iterdir()):
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        file.rename(blob)
        (snapshot / file.name).symlink_to(Path("../..") / "blobs" / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A cache holding facebook/musicgen-small (a tiny random model), named by HF_HUB_CACHE, offline."""
    build_hf_musicgen(tmp_path / "download")
    snapshot = cache_as_hub(tmp_path / "download", tmp_path / "cache", "facebook/musicgen-small")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return snapshot


def greedy_codes(model: MusicGen) -> torch.Tensor:
    return model.generate(["epic", "slow bass"], duration=0.006, use_sampling=False, return_codes=True)[1]


def test_a_hub_id_and_its_short_name_load_the_cached_snapshot(hub, tmp_path, monkeypatch):
    assert checkpoint_folder("facebook/musicgen-small") == hub
    assert checkpoint_folder("small") == hub
    expected = greedy_codes(MusicGen.from_pretrained(hub, device="cpu"))
    assert torch.equal(greedy_codes(MusicGen.from_pretrained("facebook/musicgen-small", device="cpu")), expected)
    assert torch.equal(greedy_codes(MusicGen.get_pretrained("small", device="cpu")), expected)
    monkeypatch.chdir(tmp_path)       # a folder of that name is a checkpoint directory, and wins over the cache
    assert checkpoint_folder("facebook/musicgen-small") == hub
    (tmp_path / "facebook" / "musicgen-small").mkdir(parents=True)
    assert checkpoint_folder("facebook/musicgen-small") == Path("facebook/musicgen-small")


def test_a_model_missing_from_the_cache_says_how_to_download_it(hub, tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        MusicGen.from_pretrained("facebook/musicgen-medium", device="cpu")
    message = str(error.value)
    assert f"no complete snapshot of facebook/musicgen-medium in the Hugging Face cache at {tmp_path / 'cache'};" in message
    assert "hf download facebook/musicgen-medium" in message and "nothing is downloaded here" in message
    with pytest.raises(FileNotFoundError, match="hf download facebook/musicgen-melody"):
        MusicGen.get_pretrained(device="cpu")    # audiocraft's default model
    with pytest.raises(FileNotFoundError, match="^no checkpoint directory at nowhere$"):
        MusicGen.from_pretrained("nowhere", device="cpu")       # neither a hub id nor a short name


def test_the_cache_folder_follows_the_environment_at_call_time(tmp_path, monkeypatch):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub_cache() == tmp_path / "home" / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", "~/hf")
    assert hub_cache() == tmp_path / "home" / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    assert hub_cache() == tmp_path / "hub-cache"


def test_hf_home_names_the_cache_when_hf_hub_cache_is_unset(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "cache").rename(tmp_path / "hf-home" / "hub")   # the snapshot's links are relative: they move along
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert checkpoint_folder("small") == tmp_path / "hf-home" / "hub" / hub.relative_to(tmp_path / "cache")


def test_short_names_are_audiocrafts():
    assert SHORT_NAMES == {name: f"facebook/musicgen-{name}" for name in ("small", "medium", "large", "melody", "style")}
