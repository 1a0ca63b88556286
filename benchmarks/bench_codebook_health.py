"""Codebook health: do 4 levels of 1024 codes stay alive, and which update rule quantizes best?

    python benchmarks/bench_codebook_health.py [--steps 100] [--batch 8192]

Latents are 128-d vectors from a seeded mixture of 16384 gaussians (16x more components than
codes), a fresh batch each step. Four ways to learn the same residual quantizer, all from the same
random codebooks and the same batches:
  (a) gradient: codebooks are parameters trained by Adam on ||sg(residual) - code||^2 (VQ-VAE);
  (b) EMA only;  (c) EMA + k-means start;  (d) EMA + k-means start + dead-code replacement.
After the same number of steps, on a held-out set of vectors, each level reports usage (fraction
of codes picked), perplexity of code frequencies and the mean squared error left after that level.
"""
from __future__ import annotations

import argparse
import time

import torch

from codec.quantization import ResidualVectorQuantizer, nearest_code, usage_metrics

DIMENSION, LEVELS, BINS, COMPONENTS = 128, 4, 1024, 16384
VARIANTS = {
    "(a) gradient": None,
    "(b) EMA": dict(kmeans_iters=0, dead_code_threshold=0.0),
    "(c) EMA + k-means": dict(kmeans_iters=10, dead_code_threshold=0.0),
    "(d) EMA + k-means + dead codes": dict(kmeans_iters=10, dead_code_threshold=2.0),
}


class Mixture:
    """A fixed gaussian mixture shaped like encoder latents: off-centre, mostly in a 16-d subspace,
    with unequal component weights. `sample(n, seed)` draws [n, DIMENSION] vectors."""

    def __init__(self, seed: int = 0, subspace: int = 16) -> None:
        generator = torch.Generator().manual_seed(seed)
        basis = torch.randn(subspace, DIMENSION, generator=generator) / subspace ** 0.5
        offset = torch.randn(DIMENSION, generator=generator)
        self.centres = offset + 2 * torch.randn(COMPONENTS, subspace, generator=generator) @ basis
        self.spread = 0.05 + 0.15 * torch.rand(COMPONENTS, 1, generator=generator)
        self.weights = 1.0 / torch.arange(1, COMPONENTS + 1) ** 0.5

    def sample(self, n: int, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        picks = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.centres[picks] + self.spread[picks] * torch.randn(n, DIMENSION, generator=generator)


def make_quantizer(**settings) -> ResidualVectorQuantizer:
    """The same starting codebooks for every variant (seeded by the quantizer's own generator)."""
    return ResidualVectorQuantizer(DIMENSION, LEVELS, BINS, decay=0.99, **settings).train()


def as_latent(vectors: torch.Tensor) -> torch.Tensor:
    """[N, D] -> [1, D, N], the quantizer's layout."""
    return vectors.t().unsqueeze(0)


def train_ema(settings: dict, batches) -> list[torch.Tensor]:
    quantizer = make_quantizer(**settings)
    for vectors in batches:
        quantizer(as_latent(vectors))
    return [level.codebook for level in quantizer.levels]


def train_gradient(batches, lr: float = 1e-3) -> list[torch.Tensor]:
    codebooks = [torch.nn.Parameter(level.codebook.clone()) for level in make_quantizer(kmeans_iters=0).levels]
    optimizer = torch.optim.Adam(codebooks, lr=lr)
    for vectors in batches:
        residual, loss = vectors, 0.0
        for codebook in codebooks:
            chosen = codebook[nearest_code(residual, codebook.detach())]
            loss = loss + (residual - chosen).pow(2).mean()
            residual = residual - chosen.detach()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [codebook.detach() for codebook in codebooks]


@torch.no_grad()
def evaluate(codebooks: list[torch.Tensor], vectors: torch.Tensor) -> list[tuple[float, float, float]]:
    """(usage, perplexity, mse after the level) per level."""
    rows, residual = [], vectors
    for codebook in codebooks:
        codes = nearest_code(residual, codebook)
        usage, perplexity, _ = usage_metrics(torch.bincount(codes, minlength=len(codebook)).float()).tolist()
        residual = residual - codebook[codes]
        rows.append((usage, perplexity, residual.pow(2).mean().item()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=4096)
    args = parser.parse_args()

    mixture = Mixture()
    held_out = mixture.sample(4 * 8 * BINS, seed=-1 % 2**31)
    results, seconds = {}, {}
    for name, settings in VARIANTS.items():
        torch.manual_seed(0)
        batches = (mixture.sample(args.batch, seed=step) for step in range(args.steps))
        start = time.perf_counter()
        codebooks = train_gradient(batches) if settings is None else train_ema(settings, batches)
        seconds[name] = time.perf_counter() - start
        results[name] = evaluate(codebooks, held_out)

    print(f"{LEVELS} levels x {BINS} codes, {DIMENSION}-d mixture of {COMPONENTS} gaussians, "
          f"{args.steps} steps of {args.batch} vectors; held-out {len(held_out)} vectors "
          f"(variance per dimension {held_out.var(dim=0).mean():.3f})\n")
    print("| level | metric | " + " | ".join(VARIANTS) + " |")
    print("|---|---|" + "---:|" * len(VARIANTS))
    for level in range(LEVELS):
        for column, metric in enumerate(("usage", "perplexity", "MSE")):
            cells = [results[name][level][column] for name in VARIANTS]
            text = [f"{value:.1%}" if metric == "usage" else f"{value:.1f}" if metric == "perplexity" else f"{value:.4f}"
                    for value in cells]
            print(f"| {level} | {metric} | " + " | ".join(text) + " |")
    print("| | seconds | " + " | ".join(f"{seconds[name]:.0f}" for name in VARIANTS) + " |")


if __name__ == "__main__":
    main()
