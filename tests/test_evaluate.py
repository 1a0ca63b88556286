"""musicgen-eval runs end to end on a tiny random model and a tiny classifier, through a real subprocess."""
import json
import subprocess
import sys

from tiny_models import save_tiny_musicgen

from evaluation.paraphrases import slow_fast_pairs
from synthetic.analysis import fit_instrument_classifier, rendered_examples
from synthetic.compose import INSTRUMENTS
from synthetic.dataset import heldout_prompts
from synthetic.timbre_analyser import AnalyserConfig, TimbreAnalyser


def test_evaluation_command_on_a_tiny_set(tmp_path):
    model = save_tiny_musicgen(tmp_path, max_positions=2100)
    audio, labels = rendered_examples(16, seed=0, split="train", duration=2.0, sample_rate=16000, workers=1)
    fit_instrument_classifier(audio, labels, list(INSTRUMENTS), steps=20).save(tmp_path / "classifier")
    TimbreAnalyser(list(INSTRUMENTS), AnalyserConfig(channels=(4, 4))).eval().save(tmp_path / "timbre")
    out = tmp_path / "eval.json"
    result = subprocess.run(
        [sys.executable, "-m", "evaluation.evaluate", "--model", str(model), "--classifier",
         str(tmp_path / "classifier"), "--timbre-analyser", str(tmp_path / "timbre"), "--wording-count", "2",
         "--count", "3", "--duration", "0.5", "--batch-size", "4", "--codec-clips", "1", "--quantize", "int8",
         "--json", str(out),
         "--spectrograms", str(tmp_path / "figures")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert report["quantize"] == "int8"
    assert summary["counts"] == {"renders": 3, "codec_reconstructions": 3, "generations": 3, "paraphrases": 2,
                                 "word_tempo": 2}
    # Every kind of audio is judged by both analysers, and each accuracy is the share of rows heard right.
    for source, accuracies in summary["instrument_accuracy"].items():
        rows = report[source]
        assert set(accuracies) == {"timbre", "classifier"}
        for name, accuracy in accuracies.items():
            assert all(row["predicted_instrument"][name] in INSTRUMENTS for row in rows)
            assert accuracy == sum(row["instrument"] == row["predicted_instrument"][name] for row in rows) / len(rows)
        assert all(row["estimated_bpm"] > 0 for row in rows if row["drums"])
    assert [row["prompt"] for row in report["generations"]] == [caption for caption, _ in heldout_prompts(3, 0)]
    # The renders and reconstructions are of the same held-out specs as the generations.
    for source in ("renders", "codec_reconstructions"):
        assert [row["instrument"] for row in report[source]] == [row["instrument"] for row in report["generations"]]
    # The first two word-tempo prompts are the first slow/fast pair.
    slow, fast = slow_fast_pairs()[0]
    assert [row["prompt"] for row in report["word_tempo"]] == [slow.prompt, fast.prompt]
    assert summary["slow_fast_pairs"] == 1
    ratio_met = report["word_tempo"][1]["estimated_bpm"] >= 1.15 * report["word_tempo"][0]["estimated_bpm"]
    assert summary["fast_over_slow_pairs"] == float(ratio_met)
    ceiling = summary["instrument_accuracy"]["renders"]["timbre"]
    generations = summary["targets"]["generations_share_of_ceiling"]["value"]
    assert ceiling == 0 or generations == summary["instrument_accuracy"]["generations"]["timbre"] / ceiling
    assert len(report["codec"]["levels"]) == 4 and report["codec"]["files"] == 1
    assert "codec recon" in result.stdout and "instrument, timbre" in result.stdout and "usage" in result.stdout
    figures = tmp_path / "figures"
    images = [(figures / f"{name}.png").read_bytes() for name in ("render", "reconstruction", "generation")]
    assert all(image.startswith(b"\x89PNG") for image in images) and len(set(images)) == 3


def test_evaluation_command_rejects_bad_counts(tmp_path):
    result = subprocess.run([sys.executable, "-m", "evaluation.evaluate", "--count", "0"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "--count" in result.stderr
    result = subprocess.run([sys.executable, "-m", "evaluation.evaluate", "--quantize", "int3"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "--quantize: invalid choice: 'int3'" in result.stderr
