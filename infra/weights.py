"""Weights in safetensors files: read memory-mapped, and loaded into a module as they are (no copy).

    state_dict = read_weights("model.safetensors")
    load_weights(module_built_on_meta, state_dict)
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn


def read_weights(path: str | Path, apart: Callable[[str], str | None] = lambda name: None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, memory-mapped (as transformers loads them): a page of the file
    joins the process's memory when it is first read, so weights that are never used (an encoder while
    generating, the unused rows of an embedding) cost nothing. A truncated or corrupt file is a ValueError
    naming it.

    A page once read stays resident for as long as any tensor of its mapping lives. So the tensors that inference
    replaces by new ones (matrices packed or quantized, weight-norm halves folded, weights cast) are named by
    `apart(name)`, which gives each a group: every group is read through a mapping of its own, whose pages leave
    memory with the last of the group's tensors, without ever being copied into memory of their own. Tensors for
    which it gives None share the first mapping, which lives as long as the model.
    """
    try:
        groups: dict[str | None, list[str]] = {}
        with safe_open(str(path), framework="pt") as file:
            for name in file.keys():
                groups.setdefault(apart(name), []).append(name)
            state_dict = {name: file.get_tensor(name) for name in groups.pop(None, [])}
        for members in groups.values():
            with safe_open(str(path), framework="pt") as file:
                state_dict.update({name: file.get_tensor(name) for name in members})
    except SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {error}") from None
    return state_dict


def load_weights(module: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Make `module` hold the tensors of `state_dict` themselves (no copy, but for a cast to the module's dtype
    where they differ), or raise ValueError naming the first tensor that is missing, unexpected or of the
    wrong shape: never a partial load. The module may be built on the meta device; tied parameters stay tied."""
    expected = module.state_dict()
    for name in sorted(set(expected) | set(state_dict)):
        if name not in state_dict:
            raise ValueError(f"checkpoint is missing tensor {name!r} {tuple(expected[name].shape)} that the config implies")
        if name not in expected:
            raise ValueError(f"checkpoint has tensor {name!r} that the config does not have")
        if state_dict[name].shape != expected[name].shape:
            raise ValueError(f"tensor {name!r} has shape {tuple(state_dict[name].shape)} in the checkpoint, "
                             f"the config implies {tuple(expected[name].shape)}")
    tied = _tied_parameters(module)
    module.load_state_dict({name: tensor.to(expected[name].dtype) for name, tensor in state_dict.items()}, assign=True)
    for name, source in tied.items():
        parent, _, attribute = name.rpartition(".")
        setattr(module.get_submodule(parent), attribute, module.get_parameter(source))


def _tied_parameters(module: nn.Module) -> dict[str, str]:
    """Each further name of a parameter reachable under several -> its first name."""
    first_names: dict[int, str] = {}
    tied = {}
    for name, parameter in module.named_parameters(remove_duplicate=False):
        if id(parameter) in first_names:
            tied[name] = first_names[id(parameter)]
        else:
            first_names[id(parameter)] = name
    return tied
