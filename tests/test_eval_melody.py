"""musicgen-eval-melody on a tiny random melody model and real held-out renders: the result's structure, and the
ceiling (each render against its own melody stem)."""
from __future__ import annotations

import json

import pytest
from lm_train_inputs import CARD, NUM_CODEBOOKS, TEXT_WIDTH, make_sources

from codec import Codec
from evaluation.melody import KINDS, MEASURES, main, run
from infra.manifest import read_manifest
from musicgen import MusicGen
from musicgen.conditioners import TextConditioner
from musicgen.config import ChromaConfig, LMConfig, MusicGenConfig
from musicgen.lm import LM
from synthetic.dataset import write_dataset

SAMPLE_RATE = 8000                               # make_sources with ratios (8, 8): 125 codec frames/s
CHROMA = ChromaConfig(n_fft=2048, hop_length=1024)   # the default model's 0.256 s and 0.128 s at 8 kHz


def tiny_model(folder, sources, chroma_bins: int) -> MusicGen:
    """A random tiny model (melody-conditioned with chroma_bins > 0), saved in folder and loaded back."""
    lm = LMConfig(num_codebooks=NUM_CODEBOOKS, cardinality=CARD, dim=32, num_heads=2, num_layers=1, ffn_dim=64,
                  condition_dim=TEXT_WIDTH, max_positions=160, chroma_bins=chroma_bins,
                  chroma_frames=9 if chroma_bins else 0)
    config = MusicGenConfig(lm=lm, chroma=CHROMA)
    MusicGen(config, LM(lm), TextConditioner.from_pretrained(sources[1]),
             Codec.from_pretrained(sources[0])).save_pretrained(folder)
    return MusicGen.from_pretrained(folder, device="cpu")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("sources"), ratios=[8, 8])


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """Three held-out clips of 1 s with their melody stems: the first without drums, the second with."""
    return write_dataset(tmp_path_factory.mktemp("heldout"), 3, seed=0, split="heldout", duration=1.0,
                         sample_rate=SAMPLE_RATE, write_melody=True)


def test_melody_evaluation_compares_generations_and_renders_with_each_stem(sources, heldout, tmp_path, capsys):
    tiny_model(tmp_path / "model", sources, chroma_bins=12)
    main(["--model", str(tmp_path / "model"), "--data", str(heldout), "--count", "3", "--duration", "1",
          "--batch-size", "2", "--json", str(tmp_path / "melody.json")])

    table = capsys.readouterr().out
    assert "with melody" in table and "renders (ceiling)" in table and "pitch-class agreement" in table
    result = json.loads((tmp_path / "melody.json").read_text())
    assert result["settings"]["chroma"] == {"n_fft": 2048, "hop_length": 1024, "bins": 12, "sample_rate": SAMPLE_RATE}
    rows, summary = result["clips"], result["summary"]
    manifest = read_manifest(heldout)
    assert [row["prompt"] for row in rows] == [entry["description"] for entry in manifest]
    assert all(0.0 <= row[kind][measure] <= 1.0 + 1e-6 for row in rows for kind in KINDS for measure in MEASURES)
    assert set(summary) == set(KINDS) and all(set(summary[kind]) == set(MEASURES) for kind in KINDS)
    # The ceiling on real renders: a clip without drums is its own stem; one with drums keeps most of its chroma.
    assert not manifest[0]["drums"] and manifest[1]["drums"]
    assert rows[0]["renders"] == pytest.approx({"chroma_cosine": 1.0, "pitch_class_agreement": 1.0})
    assert 0.6 < rows[1]["renders"]["chroma_cosine"] < 1.0
    # A random LM's noise shares less of the melody than the renders do.
    assert summary["with_melody"]["chroma_cosine"] < summary["renders"]["chroma_cosine"]
    assert summary["without_melody"]["chroma_cosine"] < summary["renders"]["chroma_cosine"]


def test_held_out_clips_are_rendered_when_no_manifest_is_given_and_bad_inputs_fail_clearly(sources, heldout,
                                                                                         tmp_path):
    model = tiny_model(tmp_path / "model", sources, chroma_bins=12)
    result = run(model, None, count=2, duration=0.5, batch_size=2, seed=0)
    assert result["settings"]["data"] == "2 held-out clips rendered with seed 0" and len(result["clips"]) == 2

    with pytest.raises(ValueError, match="shorter than the 2.0 s compared"):
        run(model, str(heldout), count=1, duration=2.0, batch_size=1, seed=0)
    with pytest.raises(ValueError, match="not conditioned on melodies"):
        run(tiny_model(tmp_path / "plain", sources, chroma_bins=0), str(heldout), count=1, duration=1.0,
            batch_size=1, seed=0)
    lacking = tmp_path / "lacking.jsonl"
    lacking.write_text("".join(json.dumps({"path": str(heldout.parent / entry["path"]), "description": "x"}) + "\n"
                               for entry in map(json.loads, heldout.read_text().splitlines())))
    with pytest.raises(ValueError, match=r"1 rows name no melody_path \(first: .*heldout_000000\.wav\); expected clips with melody"):
        run(model, str(lacking), count=1, duration=1.0, batch_size=1, seed=0)
