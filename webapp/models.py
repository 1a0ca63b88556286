"""The models a server offers: the embedded default and the directories named on the command line, nothing else.

Each loads on first use (CPU or CUDA as `MusicGen.from_pretrained` chooses), with its decoder's reach measured then
rather than at its first streamed chunk, and stays loaded.
"""
from __future__ import annotations

import threading
from pathlib import Path

from infra.config import load_config
from musicgen import MusicGen
from musicgen.api import CONFIG_FILE, DEFAULT_CHECKPOINT
from musicgen.config import MusicGenConfig

DEFAULT_NAME = "default"


class ModelShelf:
    """Models by name: "default" (the embedded model, unless left out) and each directory's name (made unique)."""

    def __init__(self, directories: list[Path], *, include_default: bool = True) -> None:
        self.paths: dict[str, Path | None] = {DEFAULT_NAME: None} if include_default else {}
        for directory in directories:
            if not directory.is_dir():
                raise FileNotFoundError(f"no model directory at {directory}")
            name, number = directory.resolve().name, 2
            while name in self.paths:
                name, number = f"{directory.resolve().name}-{number}", number + 1
            self.paths[name] = directory
        if not self.paths:
            raise ValueError("a server needs at least one model")
        self._loaded: dict[str, MusicGen] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def get(self, name: str) -> MusicGen:
        with self._lock:
            if name not in self._loaded:
                model = MusicGen.from_pretrained(self.paths[name])
                model.decoder_reach  # noqa: B018 - measured now, not while a first chunk waits
                self._loaded[name] = model
            return self._loaded[name]

    def describe(self, name: str) -> dict:
        """What the page shows before a model loads: its generation defaults (ours from its config.yaml; a
        Hugging Face directory gets the generic ones)."""
        path = self.paths[name] or DEFAULT_CHECKPOINT
        config = load_config(MusicGenConfig, path / CONFIG_FILE) if (path / CONFIG_FILE).is_file() else MusicGenConfig()
        defaults = config.generation
        return {"name": name, "duration": defaults.duration, "top_k": defaults.top_k, "top_p": defaults.top_p,
                "temperature": defaults.temperature, "cfg_coef": defaults.cfg_coef}
