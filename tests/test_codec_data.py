"""Codec data: audio files of any format, resampling, channel mixing, random segments, bad files."""
import json

import numpy as np
import pytest
import soundfile
import torch

from codec.train.data import SegmentDataset
from infra.audio import mix_channels, read_audio, write_audio
from infra.batches import StepBatchSampler
from infra.manifest import list_audio_paths, probe_audio, read_manifest

from codec_audio import sine


@pytest.mark.parametrize("extension", ["wav", "flac", "ogg", "mp3"])
def test_read_any_format_resampled_and_mixed(tmp_path, extension):
    path = tmp_path / f"tone.{extension}"
    soundfile.write(path, sine(440, 1.0, 22050, channels=2), 22050)
    wav = read_audio(path, sample_rate=16000, channels=1)
    assert wav.dtype == torch.float32 and wav.shape[0] == 1
    assert abs(wav.shape[1] - 16000) <= 1200  # mp3 pads with encoder delay frames
    spectrum = torch.fft.rfft(wav[0, 2000:14000]).abs()
    peak_hz = spectrum.argmax().item() * 16000 / 12000
    assert abs(peak_hz - 440) < 5


def test_read_a_window_and_round_trip_write(tmp_path):
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, size=(8000, 1)).astype(np.float32)
    soundfile.write(tmp_path / "noise.flac", samples, 8000, subtype="PCM_24")
    window = read_audio(tmp_path / "noise.flac", start=0.25, duration=0.5)
    np.testing.assert_allclose(window[0].numpy(), samples[2000:6000, 0], atol=1e-6)
    write_audio(tmp_path / "copy.wav", window, 8000)
    assert soundfile.info(tmp_path / "copy.wav").frames == 4000


def test_mix_channels():
    stereo = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(mix_channels(stereo, 1), torch.tensor([[0.5, 0.5]]))
    assert torch.equal(mix_channels(stereo[:1], 2), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="cannot mix 3 channels to 2"):
        mix_channels(torch.zeros(3, 4), 2)


def test_manifest_relative_paths_and_bad_lines(tmp_path):
    soundfile.write(tmp_path / "a.wav", sine(220, 0.5, 8000), 8000)
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "a.wav", "description": "x"}) + "\n\n")
    assert list_audio_paths(tmp_path / "m.jsonl") == [tmp_path / "a.wav"]
    (tmp_path / "bad.jsonl").write_text('{"file": "a.wav"}\n')
    with pytest.raises(ValueError, match=r'bad.jsonl:1: expected an object with a "path"'):
        list_audio_paths(tmp_path / "bad.jsonl")
    (tmp_path / "stems.jsonl").write_text(json.dumps({"path": "a.wav", "melody_path": "a.melody.wav"}) + "\n")
    assert read_manifest(tmp_path / "stems.jsonl") == [{"path": str(tmp_path / "a.wav"),
                                                         "melody_path": str(tmp_path / "a.melody.wav")}]
    (tmp_path / "bad_stem.jsonl").write_text(json.dumps({"path": "a.wav", "melody_path": 3}) + "\n")
    with pytest.raises(ValueError, match=r'bad_stem.jsonl:1: "melody_path" must be a path string, got 3'):
        read_manifest(tmp_path / "bad_stem.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files found under"):
        list_audio_paths(tmp_path / "empty")


def test_unreadable_files_are_skipped_named_and_counted(tmp_path):
    soundfile.write(tmp_path / "good.wav", sine(220, 1.0, 8000), 8000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really audio")
    with pytest.warns(UserWarning, match=r"skipping 1 of 2 audio files.*broken.wav"):
        entries = probe_audio(list_audio_paths(tmp_path))
    assert [entry.path.name for entry in entries] == ["good.wav"]
    (tmp_path / "good.wav").unlink()
    with pytest.raises(ValueError, match="none of the 1 audio files could be read: .*broken.wav"):
        probe_audio(list_audio_paths(tmp_path))


def test_a_file_that_fails_while_training_is_skipped(tmp_path):
    soundfile.write(tmp_path / "good.wav", sine(220, 1.0, 8000), 8000)
    soundfile.write(tmp_path / "later_broken.wav", sine(330, 1.0, 8000), 8000)
    entries = probe_audio(list_audio_paths(tmp_path))
    (tmp_path / "later_broken.wav").write_bytes(b"garbage now")
    dataset = SegmentDataset(entries, sample_rate=8000, channels=1, segment_samples=800, seed=0)
    with pytest.warns(UserWarning, match="failed to decode: .*later_broken.wav"):
        segments = [dataset[index] for index in range(20)]
    assert all(segment.shape == (1, 800) for segment in segments)
    assert list(dataset.failed) == [tmp_path / "later_broken.wav"]


def test_segments_are_a_function_of_the_index(tmp_path):
    soundfile.write(tmp_path / "long.wav", sine(220, 3.0, 16000), 16000)
    soundfile.write(tmp_path / "short.wav", sine(500, 0.1, 16000), 16000)
    entries = probe_audio(list_audio_paths(tmp_path))
    dataset = SegmentDataset(entries, sample_rate=16000, channels=1, segment_samples=4000, seed=7)
    again = SegmentDataset(entries, sample_rate=16000, channels=1, segment_samples=4000, seed=7)
    assert all(torch.equal(dataset[index], again[index]) for index in range(10))
    assert not torch.equal(dataset[0], dataset[1])
    # the short file (0.1 s) is zero-padded up to the segment
    padded = [dataset[index] for index in range(40) if dataset[index][0, 2000:].abs().max() == 0]
    assert padded, "a draw of the short file should be padded with zeros"


def test_step_batches_split_ranks_and_resume():
    rank0 = list(StepBatchSampler(batch_size=2, start_step=0, total_steps=3, rank=0, world_size=2))
    rank1 = list(StepBatchSampler(batch_size=2, start_step=0, total_steps=3, rank=1, world_size=2))
    assert rank0 == [[0, 1], [4, 5], [8, 9]] and rank1 == [[2, 3], [6, 7], [10, 11]]
    assert list(StepBatchSampler(batch_size=2, start_step=2, total_steps=3, rank=0, world_size=2)) == [[8, 9]]
