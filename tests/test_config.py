"""Dataclass configs from YAML with dotted overrides."""
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codec.config import ConfigError, load_config, save_config
from codec.train import TrainConfig as CodecTrainConfig
from musicgen.train import TrainConfig as LMTrainConfig

CONFIGS = Path(__file__).parents[1] / "configs"


@dataclass
class Optim:
    lr: float = 1e-3
    betas: list = field(default_factory=lambda: [0.9, 0.99])


@dataclass
class Train:
    name: str = "run"
    steps: int = 10
    optim: Optim = field(default_factory=Optim)
    schedule: Optim | None = None


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("name: small\noptim:\n  lr: 0.01\n")
    config = load_config(Train, path, ["steps=25", "optim.betas=[0.5, 0.9]", "schedule.lr=2e-4"])
    assert config == Train(name="small", steps=25, optim=Optim(lr=0.01, betas=[0.5, 0.9]), schedule=Optim(lr=2e-4))


def test_round_trip_through_yaml(tmp_path):
    config = Train(name="x", steps=3, optim=Optim(lr=0.5))
    save_config(config, tmp_path / "c.yaml")
    assert load_config(Train, tmp_path / "c.yaml") == config


def test_unknown_key_names_it_and_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key 'optim.momentum'; valid keys here: betas, lr"):
        load_config(Train, None, ["optim.momentum=0.9"])
    with pytest.raises(ValueError, match="'steps' must be int"):
        load_config(Train, None, ["steps=ten"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(Train, None, ["steps"])
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(Train, tmp_path / "missing.yaml")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_shipped_config_loads(path):
    config = load_config({"codec": CodecTrainConfig, "lm": LMTrainConfig}[path.parent.name], path)
    assert config.steps >= 1
