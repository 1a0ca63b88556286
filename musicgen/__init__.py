"""Stage two: a T5-conditioned Transformer LM over codec codes, and the `MusicGen` API.

    from musicgen import MusicGen
    wav = MusicGen.from_pretrained().generate(["lo-fi piano with soft drums"], duration=8.0, seed=0)

`MusicGen` is imported on first use, so the light modules (its configs, the training wing's token caches) load
without transformers.
"""
from .config import MusicGenConfig

__all__ = ["MusicGen", "MusicGenConfig"]


def __getattr__(name: str):
    if name == "MusicGen":
        from .api import MusicGen

        return MusicGen
    raise AttributeError(f"module 'musicgen' has no attribute {name!r}")
