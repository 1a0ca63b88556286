"""codec-train end to end: a tiny codec learns, bad input fails before training, export loads."""
import json
from pathlib import Path

import pytest
import torch

from codec import Codec
from codec.train import main
from codec.train.evaluate import si_snr
from infra.audio import read_audio
from infra.train_log import read_jsonl

from codec_audio import write_tones

TINY = str(Path(__file__).parents[1] / "configs" / "codec" / "tiny.yaml")


def test_a_tiny_codec_overfits_a_short_clip(tmp_path):
    (clip,) = write_tones(tmp_path / "audio", count=1, seconds=0.5)
    run_dir = tmp_path / "run"
    main(["--config", TINY, f"data.path={clip.parent}", f"run_dir={run_dir}", "steps=80", "checkpoint_every=80",
          "loss.adversarial=0", "loss.feature=0"])
    log = read_jsonl(run_dir / "log.jsonl")
    assert [record["step"] for record in log] == list(range(1, 81))
    first, last = (sum(record["mel"] for record in part) / len(part) for part in (log[:5], log[-5:]))
    assert last < 0.3 * first, f"mel loss fell only from {first:.3f} to {last:.3f}"
    assert sum(r["l1"] for r in log[-5:]) < 0.5 * sum(r["l1"] for r in log[:5])
    assert {"usage/0", "perplexity/1", "bits/1", "commitment", "lr", "step_time"} <= set(log[-1])

    codec = Codec.from_pretrained(run_dir / "model").eval()
    wav = read_audio(clip)[None]
    recon = codec.decode(codec.encode(wav))[..., : wav.shape[-1]]
    assert si_snr(recon, wav) > 5.0


@pytest.mark.parametrize(("setup", "overrides", "message"), [
    ("empty", [], "no audio files found under"),
    ("unreadable", [], "none of the 2 audio files could be read"),
])
def test_bad_input_fails_before_training(tmp_path, setup, overrides, message):
    audio = tmp_path / "audio"
    audio.mkdir()
    if setup == "unreadable":
        (audio / "a.wav").write_bytes(b"not audio")
        (audio / "b.flac").write_bytes(b"")
    if setup == "good":
        write_tones(audio, count=1)
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        main(["--config", TINY, f"data.path={audio}", f"run_dir={run_dir}", *overrides])
    assert not run_dir.exists()


@pytest.mark.parametrize(("overrides", "message"), [
    (["optim.momentum=0.9"], "unknown config key 'optim.momentum'"),
    (["data.segment_seconds=0.0005"], "gives 4 samples, shorter than one hop of the codec (8 samples"),
    (["data.batch_size=0"], "data.batch_size must be at least 1"),
])
def test_bad_config_fails_before_training_in_one_line(tmp_path, capsys, overrides, message):
    write_tones(tmp_path / "audio", count=1)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", TINY, f"data.path={tmp_path / 'audio'}", f"run_dir={run_dir}", *overrides])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("codec-train: error: ") and message in error and error.count("\n") == 1
    assert not run_dir.exists()


def test_manifest_input_and_fixed_weights(tmp_path):
    paths = write_tones(tmp_path / "audio", count=2)
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"path": str(path)}) + "\n" for path in paths))
    run_dir = tmp_path / "run"
    main(["--config", TINY, f"data.path={manifest}", f"run_dir={run_dir}", "steps=12", "loss.balancer=false"])
    log = read_jsonl(run_dir / "log.jsonl")
    assert "discriminator" not in log[9] and log[10]["discriminator"] > 0  # the adversary joins at step 10
    assert sorted(path.name for path in run_dir.glob("checkpoint_*")) == ["checkpoint_00000010.pt", "checkpoint_00000012.pt"]
    Codec.from_pretrained(run_dir / "model")


def test_resume_refuses_another_model_config(tmp_path):
    write_tones(tmp_path / "audio", count=1)
    common = ["--config", TINY, f"data.path={tmp_path / 'audio'}", f"run_dir={tmp_path / 'run'}", "steps=2"]
    main(common)
    with pytest.raises(ValueError,
                       match=r"cannot resume from .*checkpoint_00000002.pt: model config differs in cardinality"):
        main([*common, "--resume", "model.cardinality=8"])


def test_init_from_starts_from_an_exported_codec(tmp_path):
    write_tones(tmp_path / "audio", count=1)
    common = ["--config", TINY, f"data.path={tmp_path / 'audio'}", "steps=3", "loss.adversarial=0", "loss.feature=0"]
    main([*common, f"run_dir={tmp_path / 'pretrained'}"])
    pretrained = Codec.from_pretrained(tmp_path / "pretrained" / "model").state_dict()

    # With lr 0 only the codebooks' EMA moves: every weight is the pretrained one, and k-means did not run again.
    main([*common, f"run_dir={tmp_path / 'tuned'}", f"init_from={tmp_path / 'pretrained' / 'model'}",
          "optim.lr=0", "steps=1"])
    tuned = Codec.from_pretrained(tmp_path / "tuned" / "model").state_dict()
    moved_by_ema = ("codebook", "cluster_size", "embed_sum")
    assert all(torch.equal(tuned[name], tensor) for name, tensor in pretrained.items() if not name.endswith(moved_by_ema))
    for level in range(2):  # one EMA step (decay 0.99) moves a code by ~1%; k-means would have drawn them anew
        codebook = f"quantizer.levels.{level}.codebook"
        moved = (tuned[codebook] - pretrained[codebook]).norm(dim=1) / pretrained[codebook].norm(dim=1)
        assert moved.median() < 0.05, moved

    with pytest.raises(ValueError, match=r"cannot start from .*pretrained/model: model config differs in cardinality"):
        main([*common, f"run_dir={tmp_path / 'other'}", f"init_from={tmp_path / 'pretrained' / 'model'}",
              "model.cardinality=8"])


def test_train_decoder_only_keeps_the_codes(tmp_path, capsys):
    (clip,) = write_tones(tmp_path / "audio", count=1)
    common = ["--config", TINY, f"data.path={clip.parent}", "steps=3"]
    main([*common, f"run_dir={tmp_path / 'pretrained'}", "loss.adversarial=0", "loss.feature=0"])
    pretrained = Codec.from_pretrained(tmp_path / "pretrained" / "model").eval()

    tune = [*common, f"init_from={tmp_path / 'pretrained' / 'model'}", "train_decoder_only=true",
            "discriminator.start_step=0", "optim.lr=1e-2"]
    before = pretrained.state_dict()

    # While the discriminator leads, it learns alone.
    main([*tune, f"run_dir={tmp_path / 'led'}", "discriminator.lead_steps=3"])
    led = Codec.from_pretrained(tmp_path / "led" / "model").state_dict()
    assert all(torch.equal(led[name], tensor) for name, tensor in before.items())
    assert all(record["grad_norm"] == 0 and record["discriminator"] > 0 for record in read_jsonl(tmp_path / "led" / "log.jsonl"))

    main([*tune, f"run_dir={tmp_path / 'tuned'}"])
    tuned = Codec.from_pretrained(tmp_path / "tuned" / "model").eval()
    after = tuned.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("decoder.") for name in changed), sorted(changed)
    wav = read_audio(clip)[None]
    assert torch.equal(tuned.encode(wav), pretrained.encode(wav))
    assert not torch.equal(tuned.decode(tuned.encode(wav)), pretrained.decode(pretrained.encode(wav)))

    with pytest.raises(SystemExit):
        main([*common, f"run_dir={tmp_path / 'scratch'}", "train_decoder_only=true"])
    assert "train_decoder_only=true needs init_from" in capsys.readouterr().err


def test_train_decoder_only_swaps_in_an_istft_decoder_on_the_same_codes(tmp_path):
    (clip,) = write_tones(tmp_path / "audio", count=1)
    common = ["--config", TINY, f"data.path={clip.parent}", "steps=3", "loss.adversarial=0", "loss.feature=0"]
    main([*common, f"run_dir={tmp_path / 'pretrained'}"])
    pretrained = Codec.from_pretrained(tmp_path / "pretrained" / "model").eval()
    istft = [f"init_from={tmp_path / 'pretrained' / 'model'}", "model.decoder=istft", "model.istft_width=16",
             "model.istft_layers=2"]

    main([*common, *istft, "train_decoder_only=true", f"run_dir={tmp_path / 'istft'}"])
    swapped = Codec.from_pretrained(tmp_path / "istft" / "model").eval()
    assert swapped.config.decoder == "istft"
    before, after = pretrained.state_dict(), swapped.state_dict()
    kept = [name for name in before if not name.startswith("decoder.")]
    assert kept and all(torch.equal(after[name], before[name]) for name in kept)
    wav = read_audio(clip)[None]
    assert torch.equal(swapped.encode(wav), pretrained.encode(wav))
    assert swapped.decode(swapped.encode(wav)).shape == pretrained.decode(pretrained.encode(wav)).shape

    with pytest.raises(ValueError, match=r"another decoder \(decoder, istft_width, istft_layers differ\).*"
                                         r"only train_decoder_only=true"):
        main([*common, *istft, f"run_dir={tmp_path / 'whole'}"])
