"""The LM's training wing: `musicgen-train` (loop.py, setup.py), its token cache, training windows and loss, and
the tools that prepare its inputs (`musicgen-manifest`, `musicgen-text-encoder`). It imports the model package;
the model package never imports it.

    torchrun --standalone --nproc_per_node=2 -m musicgen.train --config configs/lm/small.yaml codec=... text_encoder=...
"""
from .loop import main, train

__all__ = ["main", "train"]
