"""Residual vector quantizer with Euclidean codebooks learned by exponential moving averages.

    rvq = ResidualVectorQuantizer(dimension=128, num_codebooks=4, cardinality=2048)
    out = rvq(latent, num_codebooks=4)           # training: EMA updates, straight-through, commitment loss
    codes = rvq.encode(latent, num_codebooks=4)  # latent [B, D, T] -> codes [B, K, T] int64
    latent = rvq.decode(codes)                   # codes [B, K, T] -> latent [B, D, T]

Each level quantizes the residual left by the levels before it. In training a level
  1. initialises its codebook by k-means on the first batch (when kmeans_iters > 0),
  2. assigns each vector to its nearest code,
  3. moves the codebook to the EMA of the vectors assigned to each code,
  4. replaces dead codes (EMA count below dead_code_threshold) by vectors of the current batch and
     resets their running statistics, so later EMA steps do not drag them back where they died.
Replacing after the assignment keeps the next level from seeing the exact zeros a code placed
on a vector would leave in its residual (codes learn to sit at the origin, where held-out data never is).
Under torch.distributed the counts and sums are summed over ranks before each update, and every
random draw (k-means seeds, replacement vectors, quantizer dropout) comes from a generator seeded
alike on every rank and indexes the batch concatenated over ranks: the codebooks stay identical on
all ranks and equal to one process seeing the whole batch. Without a process group it is a single process.
Quantization always runs in float32, also under autocast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from infra.distributed import all_reduce_sum, is_distributed, rank, world_size


def squared_distances(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """vectors [N, D], codebook [K, D] -> [N, K] squared Euclidean distances
    (computed in EnCodec's order of operations, so nearest codes agree with it bit for bit)."""
    return vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ codebook.t() + codebook.pow(2).sum(1)[None]


def nearest_code(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """vectors [N, D] -> index [N] int64 of the nearest code (the first one on ties)."""
    return squared_distances(vectors, codebook).argmin(dim=-1)


def code_statistics(vectors: torch.Tensor, codes: torch.Tensor, cardinality: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How many vectors chose each code, counts [K], and their sum, sums [K, D], over all ranks.
    Summed in float64, so the float32 results do not depend on how the batch is split over ranks."""
    stats = torch.zeros(cardinality, vectors.shape[1] + 1, dtype=torch.float64, device=vectors.device)
    stats[:, :-1].index_add_(0, codes, vectors.double())
    stats[:, -1] = torch.bincount(codes, minlength=cardinality)
    stats = all_reduce_sum(stats).to(vectors.dtype)
    return stats[:, -1], stats[:, :-1]


def sample_rows(vectors: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` rows [count, D] drawn at random from the batch concatenated over ranks (rank order),
    without replacement when there are enough; the same rows on every rank."""
    offset, total = 0, len(vectors)
    if is_distributed():
        sizes = [torch.zeros(1, dtype=torch.long, device=vectors.device) for _ in range(world_size())]
        dist.all_gather(sizes, torch.tensor([len(vectors)], device=vectors.device))
        sizes = torch.cat(sizes).tolist()
        offset, total = sum(sizes[: rank()]), sum(sizes)
    if total >= count:
        indices = torch.randperm(total, generator=generator)[:count]
    else:
        indices = torch.randint(total, (count,), generator=generator)
    indices = indices.to(vectors.device) - offset
    mine = (indices >= 0) & (indices < len(vectors))
    rows = torch.zeros(count, vectors.shape[1], dtype=vectors.dtype, device=vectors.device)
    rows[mine] = vectors[indices[mine]]
    return all_reduce_sum(rows)


def kmeans(vectors: torch.Tensor, cardinality: int, iters: int,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means over the batch of all ranks: centroids [K, D] and the counts [K] of the last assignment."""
    centroids = sample_rows(vectors, cardinality, generator)
    counts = torch.zeros(cardinality, dtype=vectors.dtype, device=vectors.device)
    for _ in range(iters):
        counts, sums = code_statistics(vectors, nearest_code(vectors, centroids), cardinality)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    return centroids, counts


def usage_metrics(counts: torch.Tensor) -> torch.Tensor:
    """counts [K] of picks per code -> [usage, perplexity, bits per index].

    usage: fraction of codes picked at least once; perplexity: exp of the entropy of the code
    frequencies (K for a uniform use of all codes); bits: the same entropy in bits (<= log2 K)."""
    probabilities = counts / counts.sum().clamp(min=1)
    entropy = -torch.special.xlogy(probabilities, probabilities).sum()
    return torch.stack([(counts > 0).float().mean(), entropy.exp(), entropy / math.log(2)])


class EuclideanCodebook(nn.Module):
    """One level: `cardinality` codes of size `dim`, with EMA statistics (cluster_size [K], embed_sum [K, D])."""

    def __init__(self, dim: int, cardinality: int, decay: float = 0.99, kmeans_iters: int = 50,
                 *, dead_code_threshold: float = 2.0, epsilon: float = 1e-5,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.cardinality, self.decay, self.kmeans_iters = cardinality, decay, kmeans_iters
        self.dead_code_threshold, self.epsilon = dead_code_threshold, epsilon
        bound = math.sqrt(6.0 / dim)
        codebook = (torch.rand(cardinality, dim, generator=generator) * 2 - 1) * bound
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.ones(cardinality))
        self.register_buffer("embed_sum", codebook.clone())
        self.register_buffer("initialized", torch.tensor(kmeans_iters == 0))

    def encode(self, vectors: torch.Tensor) -> torch.Tensor:
        """vectors [N, D] -> codes [N] int64."""
        return nearest_code(vectors, self.codebook)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [...] -> vectors [..., D]."""
        return F.embedding(codes, self.codebook)

    @torch.no_grad()
    def learn(self, vectors: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step on vectors [N, D]: returns codes [N] and counts [K] over all ranks.
        The codes are picked before the EMA step and the replacements move the codebook."""
        if not self.initialized:
            self._initialize(vectors, generator)
        codes = self.encode(vectors)
        counts, sums = code_statistics(vectors, codes, self.cardinality)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.cardinality * self.epsilon) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        if self.dead_code_threshold > 0:
            self._replace_dead_codes(vectors, generator)
        return codes, counts

    def _initialize(self, vectors: torch.Tensor, generator: torch.Generator) -> None:
        centroids, counts = kmeans(vectors, self.cardinality, self.kmeans_iters, generator)
        self.codebook.copy_(centroids)
        self.cluster_size.copy_(counts)
        self.embed_sum.copy_(centroids * counts[:, None])
        self.initialized.fill_(True)

    def _replace_dead_codes(self, vectors: torch.Tensor, generator: torch.Generator) -> None:
        """Move codes whose EMA count fell below the threshold onto random batch vectors, with
        running statistics that say 'threshold picks, all at this vector'."""
        dead = self.cluster_size < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        replacements = sample_rows(vectors, n_dead, generator)
        self.codebook[dead] = replacements
        self.cluster_size[dead] = self.dead_code_threshold
        self.embed_sum[dead] = replacements * self.dead_code_threshold


@dataclass
class QuantizerOutput:
    """quantized [B, D, T] float32 (straight-through), codes [B, K, T] int64 (K levels used),
    commitment_loss scalar, metrics {"usage/k", "perplexity/k", "bits/k": float}."""

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    metrics: dict[str, float]


class ResidualVectorQuantizer(nn.Module):
    """num_codebooks EMA codebooks, each quantizing the residual of the levels before it."""

    def __init__(self, dimension: int, num_codebooks: int, cardinality: int, decay: float = 0.99, *,
                 kmeans_iters: int = 50,
                 dead_code_threshold: float = 2.0, quantizer_dropout: float = 0.0, commitment_weight: float = 1.0,
                 epsilon: float = 1e-5, seed: int = 0) -> None:
        super().__init__()
        if num_codebooks < 1 or cardinality < 2:
            raise ValueError(f"a quantizer needs num_codebooks >= 1 and cardinality >= 2, got num_codebooks={num_codebooks}, cardinality={cardinality}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout is a probability in [0, 1], got {quantizer_dropout}")
        self.num_codebooks, self.cardinality, self.dimension = num_codebooks, cardinality, dimension
        self.quantizer_dropout, self.commitment_weight = quantizer_dropout, commitment_weight
        self.generator = torch.Generator().manual_seed(seed)
        self.levels = nn.ModuleList(
            EuclideanCodebook(dimension, cardinality, decay, kmeans_iters, dead_code_threshold=dead_code_threshold,
                              epsilon=epsilon, generator=self.generator)
            for _ in range(num_codebooks)
        )

    def encode(self, latent: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """latent [B, D, T] -> codes [B, num_codebooks, T] int64."""
        with torch.autocast(latent.device.type, enabled=False):
            residual = _as_vectors(latent.float())
            codes = []
            for level in self.levels[: num_codebooks or self.num_codebooks]:
                level_codes = level.encode(residual)
                residual = residual - level.decode(level_codes)
                codes.append(level_codes)
        return torch.stack(codes, dim=1).view(latent.shape[0], latent.shape[2], -1).transpose(1, 2).contiguous()

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> latent [B, D, T] float32, the sum of the K levels' codes."""
        with torch.autocast(codes.device.type, enabled=False):
            latent = sum(level.decode(level_codes) for level, level_codes in zip(self.levels, codes.unbind(1)))
        return latent.transpose(1, 2)

    def forward(self, latent: torch.Tensor, num_codebooks: int | None = None) -> QuantizerOutput:
        """Quantize latent [B, D, T] with the first num_codebooks levels (fewer under quantizer dropout);
        in training mode the codebooks learn from this batch."""
        num_codebooks = self._levels_for_step(num_codebooks or self.num_codebooks)
        with torch.autocast(latent.device.type, enabled=False):
            vectors = _as_vectors(latent.float())
            residual, quantized = vectors, torch.zeros_like(vectors)
            codes, losses, stats = [], [], []
            for level in self.levels[:num_codebooks]:
                level_codes, counts = self._assign(level, residual.detach())
                level_quantized = level.decode(level_codes)
                losses.append(F.mse_loss(residual, level_quantized))
                stats.append(usage_metrics(counts))
                residual = residual - level_quantized
                quantized = quantized + level_quantized
                codes.append(level_codes)
            quantized = vectors + (quantized - vectors).detach()
        batch, _, frames = latent.shape
        metrics = {
            f"{name}/{k}": value
            for k, values in enumerate(torch.stack(stats).tolist())
            for name, value in zip(("usage", "perplexity", "bits"), values)
        }
        return QuantizerOutput(
            quantized=quantized.view(batch, frames, -1).transpose(1, 2),
            codes=torch.stack(codes, dim=1).view(batch, frames, -1).transpose(1, 2).contiguous(),
            commitment_loss=self.commitment_weight * torch.stack(losses).mean(),
            metrics=metrics,
        )

    def _levels_for_step(self, num_codebooks: int) -> int:
        """num_codebooks, or under quantizer dropout (training only) a number in [1, num_codebooks] drawn from the shared generator."""
        if not 1 <= num_codebooks <= self.num_codebooks:
            raise ValueError(f"num_codebooks must be in [1, {self.num_codebooks}], got {num_codebooks}")
        if self.training and self.quantizer_dropout > 0:
            if torch.rand(1, generator=self.generator).item() < self.quantizer_dropout:
                return int(torch.randint(1, num_codebooks + 1, (1,), generator=self.generator))
        return num_codebooks

    def _assign(self, level: EuclideanCodebook, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            return level.learn(residual, self.generator)
        codes = level.encode(residual)
        return codes, torch.bincount(codes, minlength=self.cardinality).float()


def _as_vectors(latent: torch.Tensor) -> torch.Tensor:
    """[B, D, T] -> [B * T, D]."""
    return latent.transpose(1, 2).reshape(-1, latent.shape[1])
