"""musicgen-eval runs end to end on a tiny random model and a tiny classifier, through a real subprocess."""
import json
import subprocess
import sys

from synthetic.analysis import fit_instrument_classifier, rendered_examples
from synthetic.compose import INSTRUMENTS

from tiny_models import save_tiny_musicgen


def test_evaluation_command_on_a_tiny_set(tmp_path):
    model = save_tiny_musicgen(tmp_path, max_positions=2100)
    audio, labels = rendered_examples(16, seed=0, split="train", duration=2.0, sample_rate=16000, workers=1)
    fit_instrument_classifier(audio, labels, list(INSTRUMENTS), steps=20).save(tmp_path / "classifier")
    out = tmp_path / "eval.json"
    result = subprocess.run(
        [sys.executable, "-m", "evaluation.evaluate", "--model", str(model), "--classifier",
         str(tmp_path / "classifier"),
         "--count", "3", "--duration", "2", "--batch-size", "2", "--codec-clips", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    summary, rows = report["summary"], report["generations"]
    assert len(rows) == 3 and summary["generations"] == 3
    assert all(row["predicted_instrument"] in INSTRUMENTS for row in rows)
    drum_rows = [row for row in rows if row["drums"]]
    assert summary["drum_prompts"] == len(drum_rows)
    assert all(row["estimated_bpm"] > 0 for row in drum_rows)
    accuracy = sum(row["instrument"] == row["predicted_instrument"] for row in rows) / 3
    assert summary["instrument_accuracy"] == accuracy
    assert len(report["codec"]["levels"]) == 4 and report["codec"]["files"] == 1
    # The analysers also judge the renders of the same held-out specs and the codec's reconstructions of them.
    for source in ("renders", "codec_reconstructions"):
        assert [row["instrument"] for row in report[source]] == [row["instrument"] for row in rows]
        assert summary["references"][source]["instrument_accuracy"] == sum(
            row["instrument"] == row["predicted_instrument"] for row in report[source]) / 3
    assert "codec recon" in result.stdout
    assert "instrument_accuracy" in result.stdout and "usage" in result.stdout


def test_evaluation_command_rejects_bad_counts(tmp_path):
    result = subprocess.run([sys.executable, "-m", "evaluation.evaluate", "--count", "0"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "--count" in result.stderr
