"""The float32 layout is chosen by measuring both on the LM's own weights, once per machine and LM shape, and
remembered in a real cache file (musicgen/cpu_layout.py). Which layout wins is the machine's business: never
asserted."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from musicgen.cpu_layout import LAYOUTS, choose_cpu_layout, cpu_model, layout_cache_path, machine_key
from musicgen.fast_linear import can_pack
from musicgen.generate import generate_codes
from musicgen.lm import LM
from patterns import get_provider

from test_speed_paths import GREEDY, K, conditions, tiny_lm

needs_onednn = pytest.mark.skipif(not can_pack(torch.empty(0)), reason="torch built without oneDNN")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return layout_cache_path()


@needs_onednn
def test_both_layouts_are_timed_once_and_the_faster_is_remembered(cache):
    lm = tiny_lm()
    pattern = get_provider("delay", K).get_pattern(12)
    with torch.no_grad():
        expected = generate_codes(lm, pattern, *conditions(2), sampling=GREEDY)
        layout = choose_cpu_layout(lm)
        entry = json.loads(cache.read_text())[machine_key(lm)]
        assert entry["layout"] == layout == min(LAYOUTS, key=entry["seconds_per_pass"].__getitem__)
        assert all(seconds > 0 for seconds in entry["seconds_per_pass"].values())
        assert lm.fused and lm.packed == (layout == "packed")
        assert torch.equal(generate_codes(lm, pattern, *conditions(2), sampling=GREEDY), expected)
    key = machine_key(lm)
    assert cpu_model() in key and torch.__version__ in key and f"{torch.get_num_threads()} threads" in key
    assert "dim 64 ffn 128 layers 2" in key

    # Remembered: a second LM of the shape follows the file (here changed to the other layout) without measuring.
    other = next(name for name in LAYOUTS if name != layout)
    cache.write_text(json.dumps({key: {"layout": other, "seconds_per_pass": {}}}))
    again = tiny_lm(seed=1)
    assert choose_cpu_layout(again) == other and again.packed == (other == "packed")
    assert json.loads(cache.read_text())[key]["seconds_per_pass"] == {}  # nothing measured, nothing rewritten
    # Another shape is measured beside it; the remembered one stays.
    wider = LM(dataclasses.replace(lm.config, ffn_dim=256)).eval()
    choose_cpu_layout(wider)
    assert set(json.loads(cache.read_text())) == {key, machine_key(wider)}


@needs_onednn
def test_a_broken_or_unwritable_cache_costs_a_measurement_not_a_failure(cache):
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    lm = tiny_lm()
    layout = choose_cpu_layout(lm)
    assert json.loads(cache.read_text())[machine_key(lm)]["layout"] == layout  # rewritten whole
    cache.unlink()
    cache.mkdir()  # a folder where the file should be: neither readable nor writable as a file
    assert choose_cpu_layout(tiny_lm()) in LAYOUTS
    assert cache.is_dir() and list(cache.parent.iterdir()) == [cache]  # no temporary file left beside it


def test_only_float32_cpu_lms_are_laid_out():
    with pytest.raises(ValueError, match="lays out float32 LMs on a CPU with oneDNN"):
        choose_cpu_layout(tiny_lm().to(torch.bfloat16))
