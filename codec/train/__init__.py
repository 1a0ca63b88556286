"""The codec's training wing: `codec-train` (loop.py) and `codec-eval` (evaluate.py), their data, losses,
discriminators and loss balancer. It imports the codec; the codec never imports it.

    codec-train --config configs/codec/small.yaml data.path=my_audio/ run_dir=runs/codec
    torchrun --standalone --nproc_per_node=4 -m codec.train --config configs/codec/small.yaml data.path=my_audio/
"""
from .loop import main, train

__all__ = ["main", "train"]
