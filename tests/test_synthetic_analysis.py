"""The model-independent analysers: tempo from onsets, instrument from MFCC statistics."""
import numpy as np
import pytest
import soxr
import torch

from synthetic.analysis import InstrumentClassifier, accuracy, fit_instrument_classifier, rendered_examples
from synthetic.compose import INSTRUMENTS, PieceSpec, compose
from synthetic.render import Renderer
from synthetic.tempo import estimate_tempo, peak_near


@pytest.fixture(scope="module")
def renderer():
    return Renderer(16000)


@pytest.mark.parametrize("bpm, instrument, density", [(60, "piano", "busy"), (110, "strings", "moderate"),
                                                      (150, "guitar", "sparse"), (180, "flute", "busy")])
def test_tempo_of_a_rendered_drum_clip_is_within_8_percent(renderer, bpm, instrument, density):
    spec = PieceSpec(instrument, bpm, tonic=2, mode="minor", drums=True, density=density)
    audio = renderer.render(compose(spec, 8.0, np.random.default_rng(bpm)), 8.0)
    assert estimate_tempo(torch.from_numpy(audio), 16000) == pytest.approx(bpm, rel=0.08)
    audio_32k = soxr.resample(audio, 16000, 32000)
    assert estimate_tempo(torch.from_numpy(audio_32k), 32000) == pytest.approx(bpm, rel=0.08)


def test_peak_interpolation_stays_within_half_a_frame_of_the_highest_point():
    rising = torch.tensor([0.0, 1.0, 2.0, 3.0, 3.9, 4.7, 5.4])  # concave but still rising past the window
    assert peak_near(rising, centre=2, radius=1) == pytest.approx(3.5)
    peak = torch.tensor([0.0, 0.5, 1.0, 0.8, 0.1])
    assert 2.0 < peak_near(peak, centre=2, radius=1) < 2.5


def test_tempo_estimator_refuses_audio_it_cannot_measure():
    with pytest.raises(ValueError, match="too short"):
        estimate_tempo(torch.zeros(100), 16000)
    with pytest.raises(ValueError, match="one channel"):
        estimate_tempo(torch.zeros(2, 16000), 16000)


def test_classifier_trained_on_a_tiny_set_beats_chance_on_heldout_renders_and_round_trips(tmp_path):
    audio, labels = rendered_examples(64, seed=0, split="train", duration=2.0, sample_rate=16000, workers=1)
    test_audio, test_labels = rendered_examples(32, seed=0, split="heldout", duration=2.0, sample_rate=16000, workers=1)
    classifier = fit_instrument_classifier(audio, labels, list(INSTRUMENTS), steps=100)
    heldout_accuracy = accuracy(classifier, test_audio, test_labels, 16000)
    assert heldout_accuracy >= 0.6, heldout_accuracy  # chance is 1/8

    classifier.save(tmp_path)
    loaded = InstrumentClassifier.load(tmp_path)
    assert sum(path.stat().st_size for path in tmp_path.iterdir()) < 20_000
    torch.testing.assert_close(loaded(test_audio), classifier(test_audio), rtol=0, atol=0)
    audio_32k = torch.from_numpy(soxr.resample(test_audio.numpy().T, 16000, 32000).T.copy())
    assert accuracy(loaded, audio_32k, test_labels, 32000) >= heldout_accuracy - 0.1


def test_classifier_refuses_labels_outside_its_classes_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="not among the classes"):
        fit_instrument_classifier(torch.zeros(2, 16000), ["piano", "kazoo"], ["piano", "organ"])
    with pytest.raises(FileNotFoundError, match="instrument_classifier"):
        InstrumentClassifier.load(tmp_path)
