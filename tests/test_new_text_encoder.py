"""A trained LM moved onto another text encoder by a fine-tune (`init_from` with `text_encoder`), given a tempo head
(`add_tempo_head`): the LM's weights are kept but for the condition projection, and the head is fitted at export."""
from __future__ import annotations

import pytest
import torch

from musicgen import MusicGen
from musicgen.train.token_cache import write_token_cache

from lm_train_inputs import CARD, NUM_CODEBOOKS, make_sources, train_config, train_in_process

SLOW = {"slow piano": 60, "gentle strings": 70, "calm flute": 65, "laid-back guitar": 80, "a slow organ song": 75}
FAST = {"fast piano": 170, "energetic strings": 160, "rapid flute": 180, "driving guitar": 150,
        "a fast organ song": 165}


@pytest.fixture
def trained(tmp_path):
    """A tiny T5-conditioned model with a beat clock, trained 2 steps on clips whose BPM is known, and its config."""
    sources = make_sources(tmp_path / "sources")
    generator = torch.Generator().manual_seed(0)
    clips = [(torch.randint(0, CARD, (NUM_CODEBOOKS, 8), generator=generator), {"description": caption, "bpm": bpm})
             for caption, bpm in [*SLOW.items(), *FAST.items()]]
    write_token_cache(tmp_path / "tokens" / "train", clips, CARD, frame_rate=1000.0)
    config = train_config(sources, tmp_path / "first", tmp_path / "tokens", steps=2, checkpoint_every=2)
    config["model"]["lm"]["beat_clock"] = True
    return train_in_process(config), config


def test_moving_onto_minilm_keeps_the_lm_but_its_projection_and_fits_a_tempo_head(trained, tmp_path):
    first, config = trained
    tuned = {key: value for key, value in config.items() if key not in ("codec", "model")}
    tuned.update(init_from=str(first), text_encoder="minilm", add_tempo_head=True, run_dir=str(tmp_path / "tuned"),
                 optim={**config["optim"], "lr": 0.0})  # no step moves a weight: what is kept shows exactly
    export = train_in_process(tuned)

    assert not (export / "text_encoder").exists()  # the packaged encoder's weights stay in its package
    moved, start = MusicGen.from_pretrained(export, device="cpu"), MusicGen.from_pretrained(first, device="cpu")
    assert moved.config.text_encoder == "minilm" and moved.lm.config.condition_dim == moved.conditioner.dim == 384
    assert moved.lm.condition_projection.weight.shape == (start.lm.config.dim, 384)
    new = ("condition_projection.", "tempo_head.")
    kept = {name: tensor for name, tensor in start.lm.state_dict().items() if not name.startswith(new)}
    assert kept and all(torch.equal(moved.lm.state_dict()[name], tensor) for name, tensor in kept.items())
    slow, fast = moved.lm.inferred_bpm(*moved.conditioner(["a slow guitar tune", "a fast guitar tune"]))
    assert fast > 1.3 * slow, (slow, fast)
    codes = moved.generate(["a fast guitar tune"], duration=0.004, seed=0, return_tokens=True)[1]
    assert codes.shape[:2] == (1, NUM_CODEBOOKS)
    # Fine-tuned again with the encoder it is on already, the LM keeps its projection: nothing is moved.
    again = train_in_process({**tuned, "init_from": str(export), "run_dir": str(tmp_path / "again"), "seed": 1})
    kept = MusicGen.from_pretrained(again, device="cpu").lm.condition_projection.weight
    assert torch.equal(kept, moved.lm.condition_projection.weight)


def test_a_tempo_head_is_added_only_to_a_fine_tuned_lm_with_a_clock(trained, tmp_path):
    _, config = trained
    with pytest.raises(ValueError, match="add_tempo_head gives a fine-tuned .* sets model.lm.tempo_head: true instead"):
        train_in_process({**config, "add_tempo_head": True, "run_dir": str(tmp_path / "scratch")})
    clockless = {**config, "run_dir": str(tmp_path / "clockless"),
                 "model": {**config["model"], "lm": {**config["model"]["lm"], "beat_clock": False}}}
    tuned = {key: value for key, value in config.items() if key not in ("codec", "text_encoder", "model")}
    tuned.update(init_from=str(train_in_process(clockless)), add_tempo_head=True, run_dir=str(tmp_path / "tuned"))
    with pytest.raises(ValueError, match="the tempo head feeds the beat clock, and this LM has none"):
        train_in_process(tuned)
