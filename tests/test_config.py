"""Dataclass configs from YAML with dotted overrides."""
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codec import CodecConfig
from codec.train.config import CodecTrainConfig
from infra.config import ConfigError, config_from_dict, load_config, save_config
from musicgen.config import MusicGenConfig
from musicgen.train.config import LMTrainConfig

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


def test_old_key_names_still_load_with_a_deprecation_message(tmp_path):
    with pytest.warns(FutureWarning) as warned:
        codec = config_from_dict(CodecConfig, {"n_q": 2, "bins": 16})
    assert (codec.num_codebooks, codec.cardinality) == (2, 16)
    assert sorted(str(warning.message).split(";")[0] for warning in warned) == [
        "config key 'bins' is now 'cardinality'", "config key 'n_q' is now 'num_codebooks'"]
    (tmp_path / "config.yaml").write_text("lm:\n  card: 32\n  num_codebooks: 2\n")
    with pytest.warns(FutureWarning, match="config key 'lm.card' is now 'lm.cardinality'"):
        assert load_config(MusicGenConfig, tmp_path / "config.yaml").lm.cardinality == 32
    with pytest.raises(ConfigError, match="'bins' and 'cardinality' are the same setting"):
        config_from_dict(CodecConfig, {"bins": 16, "cardinality": 16})
