"""Stage two: a T5-conditioned Transformer LM over codec codes, the `MusicGen` API and `audio_write`.

    from musicgen import MusicGen, audio_write
    model = MusicGen.from_pretrained()
    wav = model.generate(["lo-fi piano with soft drums"], duration=8.0, seed=0)
    audio_write("piano", wav[0], model.sample_rate)     # piano.wav, peak-normalised (musicgen/audio_output.py)

`MusicGen` and `audio_write` are imported on first use, so the light modules (its configs, the training wing's token
caches) load without transformers.
"""
from .config import MusicGenConfig

__all__ = ["MusicGen", "MusicGenConfig", "audio_write"]


def __getattr__(name: str):
    if name == "MusicGen":
        from .api import MusicGen

        return MusicGen
    if name == "audio_write":
        from .audio_output import audio_write

        return audio_write
    raise AttributeError(f"module 'musicgen' has no attribute {name!r}")
