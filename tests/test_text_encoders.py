"""The project's own T5 and BERT encoders (musicgen/t5.py, musicgen/bert.py) against transformers' T5EncoderModel and
BertModel on the same weights: token states equal to float32 rounding, padding masked; a folder written by one is
read by the other; bad folders are clear errors."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertModel, T5Config, T5EncoderModel

from musicgen.bert import BertEncoder
from musicgen.sentence_encoder import load_packaged, packaged_model_dir
from musicgen.t5 import T5Encoder, T5EncoderConfig, relative_buckets
from musicgen.text_encoders import read_encoder, write_encoder


def token_batch(vocab_size: int, lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids [B, max(lengths)] (padding id 0 past each row's length) and the 0/1 attention mask."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab_size, (len(lengths), max(lengths)), generator=generator)
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask


def assert_same_states(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor) -> None:
    keep = mask.bool()
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours[keep], theirs[keep], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("feed_forward_proj", ["relu", "gated-gelu"])
def test_t5_matches_transformers(tmp_path, feed_forward_proj):
    torch.manual_seed(0)
    # 200 tokens apart reach past max_distance 128: every kind of relative bucket is used
    reference = T5EncoderModel(T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=64, num_layers=3, num_heads=4,
                                        feed_forward_proj=feed_forward_proj)).eval()
    reference.save_pretrained(tmp_path)
    ours = read_encoder(tmp_path).eval()
    assert isinstance(ours, T5Encoder) and ours.config.feed_forward_proj == feed_forward_proj
    ids, mask = token_batch(99, [200, 37, 1])
    with torch.no_grad():
        assert_same_states(ours(ids, mask), reference(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


def test_relative_buckets_are_exact_near_and_log_spaced_far():
    buckets = relative_buckets(1, 300, num_buckets=32, max_distance=128, device=torch.device("cpu"))[0]
    assert buckets[:8].tolist() == [0, 17, 18, 19, 20, 21, 22, 23]  # keys after the query: the upper half
    # beyond 8 apart: 8 + log(d / 8) / log(128 / 8) * 8, truncated (d = 8..11 -> 8, 12..15 -> 9), up to bucket 15
    assert buckets[8:16].tolist() == [24] * 4 + [25] * 4 and buckets[128:].unique().tolist() == [31]
    before = relative_buckets(300, 1, num_buckets=32, max_distance=128, device=torch.device("cpu"))[:, 0]
    assert before[:8].tolist() == list(range(8)) and before[128:].unique().tolist() == [15]


def test_minilm_matches_transformers_bert():
    folder = packaged_model_dir("minilm")
    reference = BertModel.from_pretrained(folder, add_pooling_layer=False).eval()
    ours, tokenizer = load_packaged("minilm")
    assert isinstance(ours, BertEncoder) and not ours.training
    tokens = tokenizer(["a slow sad string section in D minor", "piano", ""], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
        assert_same_states(ours(tokens.input_ids, tokens.attention_mask), expected, tokens.attention_mask)


def test_written_folders_read_back_in_both_implementations(tmp_path):
    torch.manual_seed(1)
    t5 = T5Encoder(T5EncoderConfig(vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4)).init_weights()
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=32, max_position_embeddings=40), add_pooling_layer=False
              ).save_pretrained(tmp_path / "bert-source")
    bert = read_encoder(tmp_path / "bert-source")
    for encoder, reference_class, name in ((t5, T5EncoderModel, "t5"), (bert, BertModel, "bert")):
        write_encoder(encoder.eval(), tmp_path / name)
        again = read_encoder(tmp_path / name).eval()
        reference = reference_class.from_pretrained(tmp_path / name).eval()
        ids, mask = token_batch(50, [9, 4], seed=2)
        with torch.no_grad():
            states = encoder(ids, mask)
            assert torch.equal(again(ids, mask), states)
            assert_same_states(states, reference(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


def test_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json and model.safetensors"):
        read_encoder(tmp_path)
    T5EncoderModel(T5Config(vocab_size=20, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ValueError, match="'gpt2' model; expected a text encoder of type t5 or bert"):
        read_encoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "d_ff": 17}))
    with pytest.raises(ValueError, match="does not match its config.json.*shape"):
        read_encoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "feed_forward_proj": "gated-silu"}))
    with pytest.raises(ValueError, match="feed_forward_proj must be one of"):
        read_encoder(tmp_path)
