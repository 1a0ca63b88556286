"""The parts of codec training: checkpoints, RNG states, logs, schedule, balancer, losses, discriminator."""
import random

import numpy as np
import pytest
import torch

from codec.train.balancer import LossBalancer
from codec.train.discriminator import MultiScaleSTFTDiscriminator
from codec.train.losses import MultiScaleMelLoss, discriminator_hinge_loss, feature_matching_loss, generator_hinge_loss
from infra.checkpoints import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from infra.schedule import warmup_cosine
from infra.train_log import JsonlLog, read_jsonl


def draws(generator: torch.Generator) -> tuple:
    return random.random(), np.random.rand(), torch.rand(3).tolist(), torch.rand(2, generator=generator).tolist()


def test_checkpoints_keep_the_newest_and_restore_rng(tmp_path):
    generator = torch.Generator().manual_seed(5)
    state = {"model": {"weight": torch.arange(4.0)}, "rng": rng_state({"own": generator})}
    expected = draws(generator)
    (tmp_path / ".checkpoint_00000001.tmp123.pt").write_bytes(b"half written")
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, state, keep_last=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2, 3]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint_00000002.pt", "checkpoint_00000003.pt"]
    loaded = load_checkpoint(latest_checkpoint(tmp_path))
    assert loaded["step"] == 3 and torch.equal(loaded["model"]["weight"], torch.arange(4.0))
    restore_rng_state(loaded["rng"], {"own": generator})
    assert draws(generator) == expected
    with pytest.raises(ValueError, match="no state for generator 'other'"):
        restore_rng_state(loaded["rng"], {"other": generator})
    assert latest_checkpoint(tmp_path / "missing") is None


def test_resumed_log_drops_records_after_the_checkpoint(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl")
    for step in range(1, 6):
        log.write({"step": step, "loss": torch.tensor(1.0 / step)})
    log.close()
    with open(tmp_path / "log.jsonl", "a") as handle:
        handle.write('{"step": 6, "lo')  # torn line of a killed writer
    resumed = JsonlLog(tmp_path / "log.jsonl", resume_step=3)
    resumed.write({"step": 4, "loss": float("nan")})
    resumed.close()
    assert [(record["step"], record["loss"]) for record in read_jsonl(tmp_path / "log.jsonl")] == [
        (1, 1.0), (2, 0.5), (3, pytest.approx(1.0 / 3)), (4, "nan")]


def test_warmup_then_cosine():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = warmup_cosine(optimizer, warmup_steps=2, total_steps=6, min_factor=0.1)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert rates[3] > rates[4] > rates[5] > 0.1


def balanced_output_gradient(balancer, losses_of, output):
    output = output.clone().requires_grad_(True)
    balancer.surrogate_loss(losses_of(output), output).backward()
    return output.grad


def test_balancer_splits_the_gradient_by_weight_whatever_the_scale():
    torch.manual_seed(0)
    output, target_a, target_b = torch.randn(3, 1, 50)

    def losses_of(y, scale_a=1.0):
        return {"a": scale_a * ((y - target_a) ** 2).mean(), "b": (y - target_b).abs().mean()}

    gradient = balanced_output_gradient(LossBalancer({"a": 3.0, "b": 1.0}), losses_of, output[None])
    y = output[None].clone().requires_grad_(True)
    grad_a, grad_b = (torch.autograd.grad(losses_of(y)[name], y)[0] for name in ("a", "b"))
    expected = 0.75 * grad_a / grad_a.norm() + 0.25 * grad_b / grad_b.norm()
    torch.testing.assert_close(gradient, expected)
    rescaled = balanced_output_gradient(LossBalancer({"a": 3.0, "b": 1.0}), lambda y: losses_of(y, 1000.0), output[None])
    torch.testing.assert_close(rescaled, gradient)


def test_mel_loss_is_zero_on_equal_audio_and_grows_with_noise():
    torch.manual_seed(0)
    loss = MultiScaleMelLoss(16000, n_ffts=(256, 1024), n_mels=64)
    clean = torch.sin(torch.arange(8000) * 0.05).reshape(1, 1, -1)
    assert loss(clean, clean).item() == 0.0
    small, large = (loss(clean + level * torch.randn_like(clean), clean).item() for level in (0.01, 0.1))
    assert 0 < small < large


def test_discriminator_shapes_and_adversarial_losses():
    torch.manual_seed(0)
    discriminator = MultiScaleSTFTDiscriminator(channels=2, n_ffts=(256, 512), filters=8)
    logits, features = discriminator(torch.randn(3, 2, 4000))
    assert [scale.shape[:2] for scale in logits] == [(3, 1), (3, 1)]
    assert [len(scale) for scale in features] == [5, 5]
    assert features[0][0].shape == (3, 8, (4000 - 256) // 64 + 1, 129)
    assert discriminator_hinge_loss([torch.full((2,), 1.0)], [torch.full((2,), -1.0)]).item() == 0.0
    assert discriminator_hinge_loss([torch.zeros(2)], [torch.zeros(2)]).item() == 2.0
    assert generator_hinge_loss([torch.full((2,), 2.0)]).item() == 0.0
    assert feature_matching_loss(features, features).item() == 0.0
    with pytest.raises(ValueError, match="needs at least n_fft=512 samples"):
        discriminator(torch.randn(1, 2, 300))
