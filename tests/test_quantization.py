"""The residual vector quantizer: k-means start, EMA learning, dead-code replacement that takes
effect, straight-through gradients, commitment on every level, dropout, float32 under autocast."""
import math

import pytest
import torch

from codec.quantization import EuclideanCodebook, ResidualVectorQuantizer, usage_metrics


def clustered_latent(centres: torch.Tensor, batch: int, frames: int, noise: float, seed: int) -> torch.Tensor:
    """latent [batch, D, frames]: each vector a random centre plus gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(centres), (batch * frames,), generator=generator)
    vectors = centres[picks] + noise * torch.randn(batch * frames, centres.shape[1], generator=generator)
    return vectors.view(batch, frames, -1).transpose(1, 2)


def test_kmeans_start_finds_the_clusters():
    centres = 10 * torch.eye(8)
    latent = clustered_latent(centres, batch=4, frames=64, noise=0.1, seed=0)
    rvq = ResidualVectorQuantizer(dimension=8, num_codebooks=1, cardinality=8, kmeans_iters=10,
                                  dead_code_threshold=0).train()
    out = rvq(latent)
    codebook = rvq.levels[0].codebook
    nearest_centre_distance = torch.cdist(codebook, centres).min(dim=1).values
    assert nearest_centre_distance.max() < 0.1
    assert out.metrics["usage/0"] == 1.0
    assert out.metrics["perplexity/0"] == pytest.approx(8, rel=0.05)


def test_residual_levels_learn_and_reduce_error():
    centres = torch.randn(64, 8, generator=torch.Generator().manual_seed(0)) * 3
    rvq = ResidualVectorQuantizer(dimension=8, num_codebooks=3, cardinality=16, kmeans_iters=5).train()
    for step in range(30):
        rvq(clustered_latent(centres, batch=8, frames=64, noise=0.05, seed=step))
    rvq.eval()
    held_out = clustered_latent(centres, batch=8, frames=64, noise=0.05, seed=1000)
    errors = [(held_out - rvq.decode(rvq.encode(held_out, num_codebooks=k))).pow(2).mean().item() for k in (1, 2, 3)]
    assert errors[0] < 0.3 * held_out.var(dim=(0, 2)).sum().item()
    assert errors[2] < errors[1] < errors[0]


def test_dead_code_is_replaced_by_a_batch_vector_and_then_picked():
    """Later EMA steps must not drag a replaced code back to where it died (audiocraft's and EnCodec's bug)."""
    level = EuclideanCodebook(dim=4, cardinality=8, decay=0.99, kmeans_iters=0, dead_code_threshold=1.0)
    generator = torch.Generator().manual_seed(0)
    batch = 5 * torch.randn(64, 4, generator=generator)
    with torch.no_grad():
        level.codebook[:7] = batch[:7] + 0.1
        level.codebook[7] = 1000.0
        level.cluster_size[:7] = 50.0
        level.embed_sum[:7] = level.codebook[:7] * 50.0
        level.cluster_size[7] = 1e-3          # dead: stale statistics that still point at 1000
        level.embed_sum[7] = 1000.0 * 1e-3
    codes, _ = level.learn(batch, generator)
    assert 7 not in codes
    assert (batch == level.codebook[7]).all(dim=1).any(), "code 7 was not moved onto a batch vector"
    placed = level.codebook[7].clone()
    codes, _ = level.learn(batch, generator)
    assert 7 in codes
    assert level.cluster_size[7] >= level.dead_code_threshold, "code 7 is still counted as dead"
    moved = (level.codebook[7] - placed).norm()
    assert moved < 0.5, f"the EMA step moved code 7 by {moved:.3f} from where it was placed"
    assert 7 in level.encode(batch)


def test_without_threshold_dead_codes_stay():
    level = EuclideanCodebook(dim=4, cardinality=8, kmeans_iters=0, dead_code_threshold=0.0)
    with torch.no_grad():
        level.codebook[7] = 1000.0
        level.embed_sum[7] = 1000.0
    level.learn(torch.randn(64, 4), torch.Generator().manual_seed(0))
    assert level.codebook[7].min() > 100


def test_straight_through_gradient_is_identity():
    rvq = ResidualVectorQuantizer(dimension=4, num_codebooks=3, cardinality=8, kmeans_iters=3).train()
    latent = torch.randn(2, 4, 16, requires_grad=True)
    (gradient,) = torch.autograd.grad(rvq(latent).quantized.sum(), latent)
    assert torch.equal(gradient, torch.ones_like(latent))


def test_commitment_loss_on_every_level_reaches_the_latent():
    rvq = ResidualVectorQuantizer(dimension=4, num_codebooks=3, cardinality=8, kmeans_iters=3,
                                  commitment_weight=0.5).train()
    rvq(torch.randn(2, 4, 16))
    rvq.eval()
    latent = torch.randn(2, 4, 16, requires_grad=True)
    out = rvq(latent)
    codes = rvq.encode(latent.detach())
    assert torch.equal(out.codes, codes)
    # straight-through: latent + (quantized - latent) is the quantized vector up to float rounding
    assert torch.allclose(out.quantized, rvq.decode(codes), atol=1e-6)
    residual, level_losses = latent, []
    for k, level in enumerate(rvq.levels):
        level_quantized = level.decode(codes[:, k]).transpose(1, 2)
        level_losses.append(torch.nn.functional.mse_loss(residual, level_quantized))
        residual = residual - level_quantized
    expected = 0.5 * torch.stack(level_losses).mean()
    assert torch.allclose(out.commitment_loss, expected)
    (gradient,) = torch.autograd.grad(out.commitment_loss, latent, retain_graph=True)
    assert torch.allclose(gradient, torch.autograd.grad(expected, latent, retain_graph=True)[0])
    (last_level_gradient,) = torch.autograd.grad(level_losses[-1], latent)
    assert last_level_gradient.abs().sum() > 0


def test_quantizer_dropout_varies_levels_in_training_only():
    rvq = ResidualVectorQuantizer(dimension=4, num_codebooks=4, cardinality=8, kmeans_iters=2,
                                  quantizer_dropout=1.0).train()
    latent = torch.randn(2, 4, 16)
    used = {rvq(latent).codes.shape[1] for _ in range(40)}
    assert used == {1, 2, 3, 4}
    rvq.eval()
    assert {rvq(latent).codes.shape[1] for _ in range(5)} == {4}
    with pytest.raises(ValueError, match="quantizer_dropout"):
        ResidualVectorQuantizer(dimension=4, num_codebooks=4, cardinality=8, quantizer_dropout=1.5)


def test_float32_under_autocast():
    rvq = ResidualVectorQuantizer(dimension=8, num_codebooks=2, cardinality=16, kmeans_iters=2).train()
    latent = torch.randn(2, 8, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rvq(latent.bfloat16())
    assert out.quantized.dtype == torch.float32 and out.commitment_loss.dtype == torch.float32
    assert all(buffer.dtype in (torch.float32, torch.bool) for buffer in rvq.buffers())
    rvq.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = rvq.encode(latent)
        decoded = rvq.decode(codes)
    assert torch.equal(codes, rvq.encode(latent)) and decoded.dtype == torch.float32


def test_usage_metrics():
    usage, perplexity, bits = usage_metrics(torch.tensor([5.0, 5.0, 5.0, 5.0])).tolist()
    assert (usage, perplexity, bits) == (1.0, pytest.approx(4.0), pytest.approx(2.0))
    usage, perplexity, bits = usage_metrics(torch.tensor([0.0, 7.0, 0.0, 0.0])).tolist()
    assert (usage, perplexity, bits) == (0.25, pytest.approx(1.0), pytest.approx(0.0))
    usage, perplexity, bits = usage_metrics(torch.tensor([1.0, 3.0, 0.0, 0.0])).tolist()
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert (usage, perplexity, bits) == (0.5, pytest.approx(math.exp(entropy)), pytest.approx(entropy / math.log(2)))


def test_training_metrics_are_named_per_level():
    rvq = ResidualVectorQuantizer(dimension=4, num_codebooks=2, cardinality=8, kmeans_iters=2).train()
    metrics = rvq(torch.randn(2, 4, 16)).metrics
    assert set(metrics) == {f"{name}/{k}" for name in ("usage", "perplexity", "bits") for k in (0, 1)}
    assert all(isinstance(value, float) for value in metrics.values())
    assert 0 < metrics["usage/0"] <= 1 and 1 <= metrics["perplexity/0"] <= 8 and 0 <= metrics["bits/0"] <= 3
