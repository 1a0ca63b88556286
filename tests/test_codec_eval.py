"""codec-eval: SI-SNR, mel distance, code usage over the whole set, speed; a table and JSON."""
import json
import math

import pytest
import torch

from codec import Codec, CodecConfig
from codec.train.evaluate import main, si_snr
from infra.audio import read_audio

from codec_audio import write_tones


def test_si_snr_is_scale_invariant_and_matches_the_noise_level():
    torch.manual_seed(0)
    clean = torch.randn(1, 1, 16000)
    noise = torch.randn(1, 1, 16000)
    noise = noise - (noise.flatten() @ clean.flatten()) / (clean.flatten() @ clean.flatten()) * clean  # orthogonal
    noise = noise * (clean.norm() / noise.norm()) * 10 ** (-20 / 20)  # 20 dB below the signal
    assert si_snr(clean * 0.3, clean) > 80
    assert si_snr(clean + noise, clean) == pytest.approx(20.0, abs=0.01)
    assert si_snr(3 * (clean + noise), clean) == pytest.approx(20.0, abs=0.01)


def test_eval_command_reports_every_metric_over_the_whole_set(tmp_path, capsys):
    torch.manual_seed(0)
    config = CodecConfig(sample_rate=8000, dimension=8, n_filters=4, ratios=[4, 2], lstm_layers=0, num_codebooks=2,
                         cardinality=8,
                         kmeans_iters=0)
    Codec(config).save_pretrained(tmp_path / "model")
    paths = write_tones(tmp_path / "audio", count=3, seconds=0.5, sample_rate=16000)
    (tmp_path / "audio" / "broken.wav").write_bytes(b"not audio")

    with pytest.warns(UserWarning, match="skipping 1 of 4 audio files.*broken.wav"):
        main(["--model", str(tmp_path / "model"), str(tmp_path / "audio"), "--json", str(tmp_path / "eval.json")])
    results = json.loads((tmp_path / "eval.json").read_text())
    table = capsys.readouterr().out
    assert "SI-SNR (dB)" in table and "perplexity" in table

    codec = Codec.from_pretrained(tmp_path / "model").eval()
    counts = torch.zeros(2, 8)
    for path in paths:
        codes = codec.encode(read_audio(path, sample_rate=8000, channels=1)[None])
        for level in range(2):
            counts[level] += torch.bincount(codes[0, level], minlength=8)
    expected_usage = [(level_counts > 0).float().mean().item() for level_counts in counts]
    assert results["files"] == 3 and results["seconds"] == pytest.approx(1.5) and results["frames"] == counts[0].sum()
    assert f"picked at least once in {int(counts[0].sum())} frames" in table
    assert [level["usage"] for level in results["levels"]] == pytest.approx(expected_usage)
    for level, level_counts in zip(results["levels"], counts):
        probabilities = level_counts[level_counts > 0] / level_counts.sum()
        entropy = -(probabilities * probabilities.log()).sum().item()
        assert level["perplexity"] == pytest.approx(math.exp(entropy), rel=1e-4)
        assert level["bits"] == pytest.approx(entropy / math.log(2), rel=1e-4)
    assert math.isfinite(results["si_snr_db"]) and results["mel_distance"] > 0
    assert results["encode_realtime"] > 0 and results["decode_realtime"] > 0
