"""Synthetic captioned music for training and evaluating the embedded default model.

- `compose`: a `PieceSpec` (instrument, tempo, key, drums, density) -> pretty_midi piece.
- `render`: MIDI -> mono audio with tinysoundfont and the SoundFont inside the pretty_midi wheel, or another
  General MIDI font (`OTHER_SOUNDFONTS`, from Debian packages); `sf3`: SF3 fonts decompressed to SF2.
- `captions`: varied captions that state only what the piece holds.
- `split`: the fixed rule that holds (instrument, tempo bucket, key) combinations out of training.
- `dataset`: clips deterministic by (seed, split, index), written as WAVs plus manifest.jsonl;
  `heldout_prompts` for the evaluation.
- `analysis`, `tempo`: model-independent analysers (instrument classifier, tempo estimator).
- `timbre_analyser`: the independent instrument analyser, never trained on the training data's font;
  `timbre_augment` its degradations, `train_timbre_analyser` the `musicgen-train-timbre-analyser` command.
- `cli`: the `musicgen-make-data` command.
"""
