"""Two real gloo processes train the quantizer on halves of each batch: their codebooks must be
bitwise equal to each other and to one process that sees the whole batches."""
import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from codec.quantization import ResidualVectorQuantizer

WORLD_SIZE = 2
STEPS = 5
THRESHOLD = 3.0


def make_quantizer() -> ResidualVectorQuantizer:
    return ResidualVectorQuantizer(dimension=4, num_codebooks=3, cardinality=16, kmeans_iters=4,
                                   dead_code_threshold=THRESHOLD,
                                   quantizer_dropout=0.5, seed=7).train()


def global_batches() -> list[torch.Tensor]:
    """latent [4, 4, 16] per step."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(4, 4, 16, generator=generator) for _ in range(STEPS)]


def train(quantizer: ResidualVectorQuantizer, batches: list[torch.Tensor]) -> tuple[list[int], list[dict], int]:
    """Levels used and metrics per step, and how many codes were replaced (their count reset to the threshold)."""
    levels, metrics, replaced = [], [], 0
    for latent in batches:
        out = quantizer(latent)
        replaced += sum(int((level.cluster_size == THRESHOLD).sum()) for level in quantizer.levels)
        levels.append(out.codes.shape[1])
        metrics.append(out.metrics)
    return levels, metrics, replaced


def worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        quantizer = make_quantizer()
        half = 4 // WORLD_SIZE
        levels, metrics, _ = train(quantizer, [batch[rank * half:(rank + 1) * half] for batch in global_batches()])
        save_file(quantizer.state_dict(), f"{out_dir}/rank{rank}.safetensors")
        Path(f"{out_dir}/rank{rank}.json").write_text(json.dumps({"levels": levels, "metrics": metrics}))
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_each_other_and_one_process(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [load_file(tmp_path / f"rank{rank}.safetensors") for rank in range(WORLD_SIZE)]
    logs = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(WORLD_SIZE)]

    single = make_quantizer()
    levels, metrics, replaced = train(single, global_batches())
    assert replaced > 0, "the test must exercise dead-code replacement"
    assert len(set(levels)) > 1, "the test must exercise quantizer dropout"

    for name, tensor in single.state_dict().items():
        for rank in range(WORLD_SIZE):
            assert torch.equal(ranks[rank][name], tensor), f"{name} differs on rank {rank}"
            assert torch.equal(ranks[rank][name], ranks[0][name])
    for log in logs:
        assert log["levels"] == levels
        assert log["metrics"] == metrics
    assert not torch.equal(single.levels[0].codebook, make_quantizer().levels[0].codebook)
