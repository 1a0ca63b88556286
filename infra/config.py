"""Configs are dataclasses, loaded from YAML with dotted `key=value` overrides.

    config = load_config(TrainConfig, "configs/codec/tiny.yaml", ["optim.lr=1e-3", "steps=10"])

Unknown keys are errors that name the key and the valid ones; values are parsed as YAML
(`steps=10` is an int, `ratios=[8,5,4]` a list, `name=foo` a string). Every such mistake raises
ConfigError, which the training commands print as one line (infra/command.py).
"""
from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from pathlib import Path
from typing import Any, TypeVar

import yaml

ConfigT = TypeVar("ConfigT")


class ConfigError(ValueError):
    """A config the user can mend: unknown key, wrong type, missing file, conflicting settings, a taken run_dir."""


def load_config(cls: type[ConfigT], path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> ConfigT:
    """Build `cls` from a YAML file (or its defaults when path is None) plus dotted overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    for override in overrides:
        apply_override(data, override)
    return config_from_dict(cls, data)


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in a nested dict, the value parsed as YAML."""
    key, sep, raw_value = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"an override must look like key=value or a.b=value, got {override!r}")
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is not a section")
    node[leaf] = yaml.safe_load(raw_value)


def config_from_dict(cls: type[ConfigT], data: dict[str, Any], prefix: str = "") -> ConfigT:
    """Build a (nested) dataclass from a dict; unknown keys raise ConfigError naming the valid ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section {prefix or '<root>'!r} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    data = _renamed(cls, data, prefix)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r}; valid keys here: {', '.join(sorted(fields))}")
    values = {}
    for name, value in data.items():
        field_type = _dataclass_in(hints[name])
        if field_type is not None and isinstance(value, dict):
            value = config_from_dict(field_type, value, prefix=f"{prefix}{name}.")
        values[name] = _coerce_number(value, hints[name], prefix + name)
    return cls(**values)


def _renamed(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Old keys a config class still reads (its `RENAMED_KEYS`, old -> new) under their new names, with a warning."""
    renamed = getattr(cls, "RENAMED_KEYS", {})
    old_keys = [key for key in data if key in renamed]
    if not old_keys:
        return data
    for key in old_keys:
        if renamed[key] in data:
            raise ConfigError(f"config keys {prefix + key!r} and {prefix + renamed[key]!r} are the same setting "
                              f"(the first is its old name); give only {prefix + renamed[key]!r}")
        warnings.warn(f"config key {prefix + key!r} is now {prefix + renamed[key]!r}; the old name still loads but "
                      "will not forever (save the config again to update it)", FutureWarning, stacklevel=4)
    return {renamed.get(key, key): value for key, value in data.items()}


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (for YAML/JSON) of a dataclass config."""
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    """Write a dataclass config as YAML."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def _coerce_number(value: Any, hint: Any, key: str) -> Any:
    """YAML reads `2e-4` as a string: a float field takes it as a number, an int field takes 3.0 as 3; a bool
    field takes only true or false."""
    if hint is float and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}") from None
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be int, got {value!r}")
    return value


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass type in a field's annotation (`Sub` or `Sub | None`), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg
    return None
