"""infra/memory.py: gathering quantized buffers into one allocation."""
import pytest
import torch
from torch import nn

from infra.memory import ALIGNMENT, gather_buffers


class Holder(nn.Module):
    def __init__(self, **buffers: torch.Tensor) -> None:
        super().__init__()
        for name, buffer in buffers.items():
            self.register_buffer(name, buffer)


def test_gathered_buffers_keep_their_values_in_one_aligned_allocation():
    torch.manual_seed(0)
    originals = [
        dict(codes=torch.randint(0, 255, (3, 5), dtype=torch.uint8), scales=torch.randn(7, 2).to(torch.bfloat16)),
        dict(weight=torch.randint(-128, 127, (4, 3), dtype=torch.int8), bias=torch.randn(9).t(), flag=torch.tensor(True)),
        dict(columns=torch.randn(6, 4).t(), empty=torch.zeros(0, 3, dtype=torch.int32)),  # not contiguous; no elements
    ]
    modules = [Holder(**{name: tensor.clone() for name, tensor in buffers.items()}) for buffers in originals]
    untouched = Holder(own=torch.ones(2))
    modules[0].add_module("child", untouched)
    gather_buffers(modules)
    storages = set()
    for module, buffers in zip(modules, originals):
        for name, expected in buffers.items():
            gathered = getattr(module, name)
            assert gathered.dtype == expected.dtype and torch.equal(gathered, expected), name
            assert gathered.is_contiguous() and name in dict(module.named_buffers(recurse=False))
            storages.add(gathered.untyped_storage().data_ptr())
            assert (gathered.data_ptr() - gathered.untyped_storage().data_ptr()) % ALIGNMENT == 0
    assert len(storages) == 1
    assert untouched.own.untyped_storage().data_ptr() not in storages  # children are not gathered


def test_gathering_refuses_buffers_on_several_devices():
    with pytest.raises(ValueError, match="on one device"):
        gather_buffers([Holder(a=torch.ones(2)), Holder(b=torch.ones(2, device="meta"))])

