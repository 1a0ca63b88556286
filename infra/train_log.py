"""What a training loop reports: a tqdm progress bar and a JSONL log, one record a line.

    log = JsonlLog(run_dir / "log.jsonl", resume_step=start_step)   # drops records after a resumed step
    progress = Progress(total=steps, initial=start_step, keys=("loss", "mel"), enabled=env.is_main)
    for step in ...:
        progress.update({"loss": 0.3, "mel": 1.2})
        log.write({"step": step, "loss": 0.3, ...})
    progress.close()
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm


class JsonlLog:
    """Append-only JSONL file; each record is written and flushed at once.

    `resume_step` drops the records with a larger "step", which a killed run wrote after its
    last checkpoint: the resumed run writes them again.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in read_jsonl(self.path) if line.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))
        self.handle = open(self.path, "a")

    def write(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps({key: _plain(value) for key, value in record.items()}) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record of a JSONL file (a torn last line from a killed writer is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class Progress:
    """A tqdm bar over steps that shows steps/s and the chosen metrics; silent when not enabled."""

    def __init__(self, total: int, initial: int = 0, keys: Sequence[str] = ("loss",), enabled: bool = True,
                 *, unit: str = "step") -> None:
        self.keys = tuple(keys)
        self.bar = tqdm(total=total, initial=initial, unit=unit, disable=not enabled, dynamic_ncols=True)

    def update(self, metrics: dict[str, float], steps: int = 1) -> None:
        shown = {key: f"{metrics[key]:.4g}" for key in self.keys if key in metrics}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(steps)

    def close(self) -> None:
        self.bar.close()


def _plain(value: Any) -> Any:
    """Numbers from tensors/numpy as python floats; NaN and inf as strings JSON can hold."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
