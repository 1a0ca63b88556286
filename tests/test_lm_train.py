"""LM training in one process: a tiny LM learns token sequences by caption under every pattern; bad input fails clearly."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import sentencepiece
import torch

from codec import Codec
from infra.checkpoints import latest_checkpoint, load_checkpoint
from infra.train_log import read_jsonl
from musicgen import MusicGen
from musicgen.conditioners import TextConditioner
from musicgen.train import main
from musicgen.train.loop import NonFiniteLossError
from musicgen.train.text_encoder import main as text_encoder_main
from musicgen.train.token_cache import write_token_cache
from patterns import PATTERN_NAMES

from lm_train_inputs import CAPTIONS, CARD, NUM_CODEBOOKS, make_sources, train_config, train_in_process, write_caches

FRAMES = 6


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("sources"))


def greedy_codes(export, captions: list[str], frames: int) -> torch.Tensor:
    model = MusicGen.from_pretrained(export, device="cpu")
    _, codes = model.generate(captions, duration=frames / model.frame_rate, use_sampling=False, cfg_coef=1.0,
                              return_codes=True)
    return codes


@pytest.mark.parametrize("pattern", PATTERN_NAMES)
def test_tiny_lm_learns_each_caption_sequence(sources, tmp_path, pattern):
    clips = write_caches(tmp_path / "tokens", [FRAMES] * 4, valid_frames=[FRAMES] * 2)
    export = train_in_process(train_config(sources, tmp_path / "run", tmp_path / "tokens", pattern, FRAMES, steps=80,
                              checkpoint_every=80, eval_every=40, eval_items=4))

    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert [record["step"] for record in log] == list(range(1, 81))
    assert log[0]["loss"] > 2.5                       # about ln(16) at the start
    assert log[-1]["loss"] < 0.05
    assert {f"ppl/{k}" for k in range(NUM_CODEBOOKS)} <= set(log[-1])
    assert "valid_loss" in log[39] and "valid_loss" in log[-1] and "valid_loss" not in log[0]
    assert all(record["tokens_per_second"] > 0 and record["lr"] > 0 for record in log)
    # Greedy generation from each caption gives back that caption's sequence.
    assert torch.equal(greedy_codes(export, CAPTIONS, FRAMES), torch.stack([codes for codes, _ in clips]))


def test_bf16_autocast_on_the_cpu_learns_as_float32_does(sources, tmp_path):
    # cpu_bf16: the forward in bfloat16 (the loss in float32): the same first loss to bfloat16's precision, not
    # bit for bit, and a tiny LM that still learns each caption's sequence.
    clips = write_caches(tmp_path / "tokens", [FRAMES] * 4)
    logs = {}
    for bf16 in (False, True):
        export = train_in_process(train_config(sources, tmp_path / f"bf16_{bf16}", tmp_path / "tokens", frames=FRAMES,
                                               steps=80, checkpoint_every=80, cpu_bf16=bf16))
        logs[bf16] = read_jsonl(tmp_path / f"bf16_{bf16}" / "log.jsonl")
    first_float32, first_bf16 = logs[False][0]["loss"], logs[True][0]["loss"]
    assert first_float32 != first_bf16 and abs(first_float32 - first_bf16) < 0.02 * first_float32
    assert logs[True][-1]["loss"] < 0.05
    assert torch.equal(greedy_codes(export, CAPTIONS, FRAMES), torch.stack([codes for codes, _ in clips]))


def test_fine_tuning_starts_from_the_checkpoint_and_trains_the_text_encoder(sources, tmp_path):
    write_caches(tmp_path / "tokens", [FRAMES] * 4)
    first = train_in_process(train_config(sources, tmp_path / "first", tmp_path / "tokens", steps=60, checkpoint_every=60))
    tuned = train_config(sources, tmp_path / "tuned", tmp_path / "tokens", steps=3, checkpoint_every=3,
                         train_text_encoder=True, optim={"lr": 1e-3, "warmup_steps": 0})
    for key in ("codec", "text_encoder", "model"):
        del tuned[key]
    export = train_in_process({**tuned, "init_from": str(first)})

    log = read_jsonl(tmp_path / "tuned" / "log.jsonl")
    assert log[0]["loss"] < 0.1                       # the fine-tuned LM already knows the sequences
    before, after = MusicGen.from_pretrained(first), MusicGen.from_pretrained(export)
    encoder_before = before.conditioner.encoder.state_dict()
    changed = [name for name, tensor in after.conditioner.encoder.state_dict().items()
               if not torch.equal(tensor, encoder_before[name])]
    assert changed, "train_text_encoder=true must change the exported text encoder"
    assert after.lm.config == before.lm.config and after.config.pattern == before.config.pattern


def test_fine_tuning_onto_a_retrained_codec_starts_from_the_lm_and_ships_the_new_codec(sources, tmp_path):
    write_caches(tmp_path / "tokens", [FRAMES] * 4)
    first = train_in_process(train_config(sources, tmp_path / "first", tmp_path / "tokens", steps=60, checkpoint_every=60))
    codec_config = Codec.from_pretrained(sources[0]).config
    torch.manual_seed(1)
    Codec(codec_config).save_pretrained(tmp_path / "retrained")
    tuned = train_config(sources, tmp_path / "tuned", tmp_path / "tokens", steps=2, checkpoint_every=2)
    del tuned["text_encoder"], tuned["model"]
    export = train_in_process({**tuned, "init_from": str(first), "codec": str(tmp_path / "retrained")})

    assert read_jsonl(tmp_path / "tuned" / "log.jsonl")[0]["loss"] < 0.1  # the LM of the checkpoint
    shipped = MusicGen.from_pretrained(export).codec.state_dict()
    retrained = Codec.from_pretrained(tmp_path / "retrained").state_dict()
    assert shipped.keys() == retrained.keys() and all(torch.equal(shipped[name], retrained[name]) for name in shipped)

    Codec(dataclasses.replace(codec_config, num_codebooks=NUM_CODEBOOKS - 1)).save_pretrained(tmp_path / "fewer_levels")
    with pytest.raises(ValueError, match=f"the codec has K={NUM_CODEBOOKS - 1} codebooks .* the LM expects K={NUM_CODEBOOKS}"):
        train_in_process({**tuned, "run_dir": str(tmp_path / "other"), "init_from": str(first), "codec": str(tmp_path / "fewer_levels")})


def test_a_padded_short_clip_is_scored_only_on_its_frames(sources, tmp_path):
    # One clip of 2 frames in windows of 6: 4 frames of padding a window that the loss must not score.
    write_caches(tmp_path / "tokens", [2])
    train_in_process(train_config(sources, tmp_path / "run", tmp_path / "tokens", steps=2, checkpoint_every=2, data={"batch_size": 2}))
    record = read_jsonl(tmp_path / "run" / "log.jsonl")[0]
    assert record["tokens"] == 2 * 2 * NUM_CODEBOOKS   # 2 windows x 2 frames x K codebooks


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(sources, tmp_path):
    write_caches(tmp_path / "tokens", [FRAMES] * 4)
    # An absurd learning rate: step 1 is finite, its update makes step 2's attention overflow.
    config = train_config(sources, tmp_path / "run", tmp_path / "tokens", steps=5, checkpoint_every=1,
                          optim={"lr": 1e30, "warmup_steps": 0})
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 2.*checkpoint_00000001\.pt"):
        train_in_process(config)
    newest = latest_checkpoint(tmp_path / "run")
    assert newest.name == "checkpoint_00000001.pt"
    assert all(torch.isfinite(tensor).all() for tensor in load_checkpoint(newest)["model"].values())


def test_empty_manifest_is_a_clear_error(sources, tmp_path):
    manifest = tmp_path / "empty.jsonl"
    manifest.write_text("\n")
    config = train_config(sources, tmp_path / "run", tmp_path / "tokens", data={"manifest": str(manifest)})
    with pytest.raises(ValueError, match="lists no audio files"):
        train_in_process(config)


def test_manifest_line_without_path_is_a_clear_error(sources, tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(json.dumps({"path": "a.wav", "description": "x"}) + "\n" + json.dumps({"description": "y"}) + "\n")
    config = train_config(sources, tmp_path / "run", tmp_path / "tokens", data={"manifest": str(manifest)})
    with pytest.raises(ValueError, match=r'train\.jsonl:2: expected an object with a "path"'):
        train_in_process(config)


def test_codec_disagreeing_with_the_lm_is_a_clear_error(sources, tmp_path):
    config = train_config(sources, tmp_path / "run", tmp_path / "tokens")
    config["model"]["lm"]["cardinality"] = 2 * CARD
    with pytest.raises(ValueError, match=f"codec has K={NUM_CODEBOOKS} codebooks of {CARD} codes, the LM expects "
                                         f"K={NUM_CODEBOOKS} of {2 * CARD}"):
        train_in_process(config)
    config["model"]["lm"].update(cardinality=CARD, num_codebooks=NUM_CODEBOOKS + 1)
    with pytest.raises(ValueError, match=f"the LM expects K={NUM_CODEBOOKS + 1}"):
        train_in_process(config)


def test_token_cache_disagreeing_with_the_lm_is_a_clear_error(sources, tmp_path):
    write_token_cache(tmp_path / "tokens" / "train", [(torch.zeros(NUM_CODEBOOKS, FRAMES, dtype=torch.long), {})],
                      cardinality=2 * CARD, frame_rate=1000.0)
    with pytest.raises(ValueError, match=f"holds K={NUM_CODEBOOKS} codebooks of {2 * CARD} codes"):
        train_in_process(train_config(sources, tmp_path / "run", tmp_path / "tokens"))


def test_config_errors_name_what_is_wrong(sources, tmp_path, capsys):
    base = train_config(sources, tmp_path / "run", tmp_path / "tokens")
    with pytest.raises(ValueError, match="missing model"):
        train_in_process({key: value for key, value in base.items() if key != "model"})
    with pytest.raises(ValueError, match="not both: init_from=.* and model are set"):
        train_in_process({**base, "init_from": str(tmp_path)})
    with pytest.raises(ValueError, match="micro_batch_size=3 must divide"):
        train_in_process({**base, "data": {**base["data"], "micro_batch_size": 3}})
    with pytest.raises(ValueError, match="no token cache"):
        train_in_process(base)
    with pytest.raises(SystemExit):
        main(["--config", str(Path(__file__).parents[1] / "configs" / "lm" / "tiny.yaml"), "optim.learning_rate=1"])
    assert "unknown config key 'optim.learning_rate'" in capsys.readouterr().err


def test_text_encoder_from_scratch_tokenizes_like_its_sentencepiece_model(tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"path": f"{index}.wav", "description": caption}) + "\n"
                                for index, caption in enumerate(CAPTIONS * 3)))
    text_encoder_main(["--manifest", str(manifest), "--out", str(tmp_path / "text"), "--vocab-size", "48",
                       "--d-model", "16", "--layers", "1", "--heads", "2"])
    conditioner = TextConditioner.from_pretrained(tmp_path / "text")
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "text" / "spiece.model"))
    for text in CAPTIONS + ["an unseen caption, with Unknown letters!", "  extra   spaces "]:
        assert conditioner.tokenizer(text).input_ids == processor.encode(text) + [1]    # then </s>
    condition, mask = conditioner(["slow piano", ""])
    assert condition.shape[::2] == (2, 16) and mask[0].any() and not mask[1].any()
    assert not any(parameter.requires_grad for parameter in conditioner.parameters())


def test_fine_tuning_a_hugging_face_musicgen_folder(sources, tmp_path):
    from test_musicgen_hf import (
        build_hf_musicgen,  # a tiny random MusicgenForConditionalGeneration, saved by transformers
    )

    build_hf_musicgen(tmp_path / "hf", "k4")           # K=4 codebooks of 32 codes, 1000 frames/s, T5 width 32
    generator = torch.Generator().manual_seed(0)
    clips = [(torch.randint(0, 32, (4, FRAMES), generator=generator), {"description": caption}) for caption in CAPTIONS]
    write_token_cache(tmp_path / "tokens" / "train", clips, cardinality=32, frame_rate=1000.0)
    config = train_config(sources, tmp_path / "run", tmp_path / "tokens", steps=2, checkpoint_every=2)
    for key in ("codec", "text_encoder", "model"):
        del config[key]
    export = train_in_process({**config, "init_from": str(tmp_path / "hf")})

    assert all(record["loss"] > 0 for record in read_jsonl(tmp_path / "run" / "log.jsonl"))
    tuned, original = MusicGen.from_pretrained(export), MusicGen.from_pretrained(tmp_path / "hf")
    assert tuned.config.pattern.name == "delay" and tuned.lm.config == original.lm.config
    assert not torch.equal(tuned.lm.heads[0].weight, original.lm.heads[0].weight)
    assert greedy_codes(export, CAPTIONS[:1], FRAMES).shape == (1, 4, FRAMES)
