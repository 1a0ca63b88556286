"""Judging audio against what was asked: instrument by each analyser, tempo by the onset estimator.

A row is one clip: what its prompt asked (instrument, drums, a stated BPM or a tempo bucket asked by words) and
what the analysers heard ({"timbre": ..., "classifier": ...} and, with drums, the estimated BPM). Two instrument
analysers judge every clip:

- "timbre": synthetic/timbre_analyser.py, a CNN trained only on other SoundFonts than the training data's
  (independent of the model's data: its score on the renders is its ceiling);
- "classifier": synthetic/analysis.py, MFCC statistics trained on the training data's own SoundFont (a second
  opinion that shares the model's font, so it flatters it).
"""
from __future__ import annotations

from typing import Any, Protocol

import torch

from synthetic.split import TEMPO_BUCKETS
from synthetic.tempo import estimate_tempo

TEMPO_TOLERANCE = 0.08
FAST_OVER_SLOW = 1.15


class Analyser(Protocol):
    def predict(self, audio: torch.Tensor, sample_rate: int) -> list[str]: ...


def judge(audio: torch.Tensor, asked: list[dict[str, Any]], sample_rate: int,
          analysers: dict[str, Analyser]) -> list[dict[str, Any]]:
    """audio [B, N] mono, one `asked` dict per clip (instrument, drums, ...) -> the rows, with what was heard."""
    heard = {name: analyser.predict(audio, sample_rate) for name, analyser in analysers.items()}
    rows = []
    for index, (clip, row) in enumerate(zip(audio, asked)):
        row = {**row, "predicted_instrument": {name: predictions[index] for name, predictions in heard.items()}}
        if row["drums"]:
            row["estimated_bpm"] = estimate_tempo(clip, sample_rate)
        rows.append(row)
    return rows


def instrument_accuracy(rows: list[dict[str, Any]], analyser: str) -> float:
    """The fraction of rows whose instrument `analyser` heard as the one asked."""
    return sum(row["instrument"] == row["predicted_instrument"][analyser] for row in rows) / len(rows)


def tempo_within_tolerance(rows: list[dict[str, Any]]) -> float:
    """Of the drum rows with a BPM, the fraction whose estimate lies within 8% of it (nan when there are none)."""
    hits = [abs(row["estimated_bpm"] - row["bpm"]) <= TEMPO_TOLERANCE * row["bpm"] for row in rows
            if row["drums"] and row.get("bpm")]
    return sum(hits) / len(hits) if hits else float("nan")


def nearest_bucket(bpm: float) -> str:
    """The tempo bucket a measured BPM falls in, the gaps between buckets split at their middles."""
    bounds = list(TEMPO_BUCKETS.items())
    for (name, (_, high)), (_, (next_low, _)) in zip(bounds, bounds[1:]):
        if bpm < (high + next_low) / 2:
            return name
    return bounds[-1][0]


def bucket_hits(rows: list[dict[str, Any]]) -> float:
    """Of the rows that ask a tempo bucket by words, the fraction whose measured tempo lands in it."""
    asked = [row for row in rows if row.get("tempo_bucket")]
    return sum(nearest_bucket(row["estimated_bpm"]) == row["tempo_bucket"] for row in asked) / len(asked)


def fast_over_slow(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> float:
    """Of (slow row, fast row) pairs, the fraction whose fast clip measures at least 1.15x the slow one's tempo."""
    return sum(fast["estimated_bpm"] >= FAST_OVER_SLOW * slow["estimated_bpm"] for slow, fast in pairs) / len(pairs)
