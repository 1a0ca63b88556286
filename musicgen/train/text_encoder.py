"""A small T5 text encoder made from scratch for a caption set: no download, nothing pretrained.

    build_text_encoder(captions, "runs/text_encoder", vocab_size=256, d_model=128, layers=2, heads=4)
    python -m musicgen.train.text_encoder --manifest data/train.jsonl --out runs/text_encoder --vocab-size 256

A unigram sentencepiece model is trained on the captions (identity normalisation, so that
transformers' T5Tokenizer, built from its pieces and scores, splits text exactly like it) and a
randomly initialised `T5Encoder` (musicgen/t5.py) of the given size goes with it. The folder holds what
`TextConditioner.from_pretrained` reads (T5 config and weights in transformers' layout, tokenizer files)
plus `spiece.model`. Such an encoder knows nothing yet: train it with the LM
(`train_text_encoder: true` in `musicgen-train`).
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import sentencepiece
import torch
from transformers import T5Tokenizer

from infra.manifest import read_manifest

from ..t5 import T5Encoder, T5EncoderConfig
from ..text_encoders import write_encoder

SENTENCEPIECE_FILE = "spiece.model"
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2  # T5's fixed special ids


def train_sentencepiece(captions: Sequence[str], vocab_size: int, seed: int = 0) -> sentencepiece.SentencePieceProcessor:
    """A unigram sentencepiece model of at most `vocab_size` pieces (<pad>, </s>, <unk> first), trained on `captions`."""
    captions = [caption for caption in captions if caption.strip()]
    if not captions:
        raise ValueError("need at least one non-empty caption to train a tokenizer on")
    if vocab_size < 8:
        raise ValueError(f"vocab_size must be at least 8, got {vocab_size}")
    sentencepiece.set_random_generator_seed(seed)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(captions), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1, character_coverage=1.0, hard_vocab_limit=False,
        normalization_rule_name="identity", num_threads=1, minloglevel=2)
    return sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())


def t5_tokenizer(processor: sentencepiece.SentencePieceProcessor) -> T5Tokenizer:
    """transformers' T5Tokenizer with the pieces and scores of `processor` (same ids, no extra sentinel ids)."""
    vocab = [(processor.id_to_piece(index), processor.get_score(index)) for index in range(processor.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_text_encoder(captions: Sequence[str], out_dir: str | Path, vocab_size: int = 256, d_model: int = 128,
                       *, layers: int = 2, heads: int = 4, d_ff: int | None = None, dropout: float = 0.1,
                       seed: int = 0) -> Path:
    """Train a tokenizer on `captions`, build a random T5 encoder (d_ff defaults to 4 * d_model), save both in `out_dir`."""
    if d_model % heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
    processor = train_sentencepiece(captions, vocab_size, seed)
    tokenizer = t5_tokenizer(processor)
    config = T5EncoderConfig(vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // heads,
                             d_ff=d_ff or 4 * d_model, num_layers=layers, num_heads=heads, dropout_rate=dropout)
    torch.manual_seed(seed)
    encoder = T5Encoder(config).init_weights()
    out_dir = Path(out_dir)
    write_encoder(encoder, out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / SENTENCEPIECE_FILE).write_bytes(processor.serialized_model_proto())
    return out_dir


def manifest_captions(manifests: Sequence[str | Path]) -> list[str]:
    """The non-empty descriptions of every clip of the manifests."""
    return [record["description"] for manifest in manifests for record in read_manifest(manifest)
            if isinstance(record.get("description"), str) and record["description"].strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m musicgen.train.text_encoder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", action="append", required=True, help="JSONL manifest(s) whose descriptions to learn")
    parser.add_argument("--out", required=True, help="output folder (a T5 encoder + tokenizer)")
    parser.add_argument("--vocab-size", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=None, help="feed-forward width (default 4 * d_model)")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not args.force:
            parser.exit(2, f"{out} is not empty; pass --force to replace it\n")
        shutil.rmtree(out)
    captions = manifest_captions(args.manifest)
    build_text_encoder(captions, out, args.vocab_size, args.d_model, layers=args.layers, heads=args.heads,
                       d_ff=args.d_ff, dropout=args.dropout,
                       seed=args.seed)
    tokenizer_size = len(T5Tokenizer.from_pretrained(out, local_files_only=True))
    print(json.dumps({"text_encoder": str(out), "captions": len(captions), "vocab_size": tokenizer_size,
                      "d_model": args.d_model, "layers": args.layers}))


if __name__ == "__main__":
    main()
