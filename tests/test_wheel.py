"""A wheel built from the repo carries the default model: installed away from the checkout, `MusicGen.from_pretrained()`
finds checkpoints/default as package data of `musicgen_checkpoints` and generates."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"infra", "patterns", "codec", "musicgen", "synthetic", "evaluation", "webapp", "musicgen_checkpoints"}

# Run with PYTHONPATH=<the wheel installed with --target> from a folder outside the checkout.
GENERATE = """
import json
import torch
import codec, musicgen, musicgen_checkpoints, patterns
from musicgen import MusicGen
from musicgen.api import DEFAULT_CHECKPOINT

model = MusicGen.from_pretrained(device="cpu")
wav = model.generate(["a slow flute melody in D minor"], duration=1.0, seed=0)
print(json.dumps({"modules": [module.__file__ for module in (codec, musicgen, musicgen_checkpoints, patterns)],
                  "checkpoint": str(DEFAULT_CHECKPOINT), "shape": list(wav.shape), "sample_rate": model.sample_rate,
                  "finite": bool(torch.isfinite(wav).all()), "peak": float(wav.abs().max())}))
"""


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def source_files() -> list[str]:
    """The working tree's files that git does not ignore, tracked or not: what a fresh checkout would build."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                 capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("lists the files to build with git: needs a git checkout")
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def test_pyproject_lists_every_package():
    """pyproject.toml lists the packages (discovery cannot map checkpoints/ to musicgen_checkpoints): none is left out."""
    tomllib = pytest.importorskip("tomllib")
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = find_packages(where=str(ROOT), include=["infra*", "patterns*", "codec*", "musicgen*", "synthetic*",
                                                    "evaluation*", "webapp*"])
    assert sorted(config["packages"]) == sorted([*found, "musicgen_checkpoints"])
    assert config["package-dir"] == {"musicgen_checkpoints": "checkpoints"}


def test_wheel_installed_elsewhere_generates_with_the_default_model(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info into the tree it builds.
    source, wheels, target, elsewhere = (tmp_path / name for name in ("source", "wheels", "target", "elsewhere"))
    files = source_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, source / name)
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-index", "--no-build-isolation", "--wheel-dir", str(wheels), str(source)])
    (wheel,) = wheels.glob("*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    weights = {"musicgen_checkpoints/" + name.removeprefix("checkpoints/") for name in files
               if name.startswith("checkpoints/")}
    assert "musicgen_checkpoints/default/lm.safetensors" in weights
    assert weights <= names, sorted(weights - names)
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == PACKAGES
    assert {f"webapp/static/{page}" for page in ("index.html", "app.js", "style.css")} <= names  # musicgen-app's page

    run([*pip, "install", "--no-deps", "--no-index", "--no-compile", "--target", str(target), str(wheel)])
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = run([sys.executable, "-c", GENERATE], cwd=elsewhere, env=env)
    record = json.loads(result.stdout.splitlines()[-1])
    for path in [*record["modules"], record["checkpoint"]]:  # the installed copy, not the checkout
        assert Path(path).resolve().is_relative_to(target.resolve()), path
    assert Path(record["checkpoint"]) == target / "musicgen_checkpoints" / "default"
    assert record["shape"] == [1, 1, record["sample_rate"]]
    assert record["finite"] and record["peak"] > 0.01
