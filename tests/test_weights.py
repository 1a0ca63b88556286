"""infra/weights.py: tensors read memory-mapped, those that inference replaces through mappings of their own."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from infra.weights import read_weights

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the process's mappings from /proc")


def file_mappings(path: Path) -> list[tuple[int, int, int]]:
    """(start, end, the mapping's own start) of each region of this process's memory that maps the file at path
    (Linux: /proc/self/maps); a region's address less its file offset names the mapping it belongs to."""
    regions = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == str(path.resolve()):
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            regions.append((start, end, start - int(fields[2], 16)))
    return regions


def mappings_of(path: Path) -> int:
    return len({mapping for _, _, mapping in file_mappings(path)})


def mapping_holding(tensor: torch.Tensor, path: Path) -> int | None:
    """Which mapping of the file holds the tensor's first byte; None: memory of its own."""
    return next((mapping for start, end, mapping in file_mappings(path) if start <= tensor.data_ptr() < end), None)


def test_each_group_is_mapped_apart_and_its_mapping_goes_with_its_last_tensor(tmp_path):
    path = tmp_path / "weights.safetensors"
    saved = {"kept": torch.randn(256, 256), "replaced.a": torch.randn(256, 256), "replaced.b": torch.randn(64),
             "cast": torch.randn(512, 128)}
    save_file(saved, str(path))
    group = {"replaced.a": "replaced", "replaced.b": "replaced", "cast": "cast"}
    state = read_weights(path, apart=group.get)
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    mapping = {name: mapping_holding(tensor, path) for name, tensor in state.items()}
    assert None not in mapping.values()  # none copied
    assert mapping["replaced.a"] == mapping["replaced.b"]  # one mapping a group
    assert len({mapping["kept"], mapping["replaced.a"], mapping["cast"]}) == 3
    assert mappings_of(path) == 3
    state["cast"] = state["cast"].to(torch.bfloat16)  # as a text encoder in bfloat16 casts its weights
    assert mappings_of(path) == 2
    del state["replaced.a"]
    assert mappings_of(path) == 2  # replaced.b still holds its group's mapping
    del state["replaced.b"]
    assert mappings_of(path) == 1
    assert torch.equal(state["kept"], saved["kept"])
    del state
    assert mappings_of(path) == 0


def test_a_truncated_file_is_a_value_error_naming_it(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"a": torch.randn(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="weights.safetensors is not a readable safetensors file"):
        read_weights(path, apart=lambda name: "all")
