"""Moving a trained LM onto another text encoder: `text_encoder` beside `init_from` in a fine-tune.

    musicgen = with_text_encoder(MusicGen.from_pretrained("runs/default/lm/model"), TextConditioner.load("minilm"))

The LM reads its text through one projection, condition [B, L, condition_dim] -> [B, L, dim], before every layer's
cross-attention (musicgen/lm.py). A new encoder gets a new projection at its width (and a new tempo head, if the LM
has one); every other weight of the LM is kept. What the LM learnt about music stays, and a fine-tune teaches it the
new encoder's meaning of the words: this is how the default model moved from the small T5 it was trained with to the
frozen pretrained MiniLM, which knows words that the captions never used.
"""
from __future__ import annotations

import dataclasses

from torch import nn

from musicgen.api import MusicGen
from musicgen.conditioners import TextConditioner
from musicgen.tempo_head import TempoHead


def with_text_encoder(musicgen: MusicGen, conditioner: TextConditioner) -> MusicGen:
    """musicgen's codec and LM with `conditioner` for its text: the LM's condition projection (and tempo head) made
    anew at conditioner.dim, at PyTorch's default initialisation; its other weights kept."""
    lm = musicgen.lm
    lm.config = dataclasses.replace(lm.config, condition_dim=conditioner.dim)
    lm.condition_projection = nn.Linear(conditioner.dim, lm.config.dim).to(lm.norm.weight)
    if lm.tempo_head is not None:
        lm.tempo_head = TempoHead(conditioner.dim).to(lm.norm.weight)
    config = dataclasses.replace(musicgen.config, lm=lm.config)
    return MusicGen(config, lm, conditioner.to(lm.device), musicgen.codec)
