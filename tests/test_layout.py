"""The floors of the house (../shared/DESIGN.md), read from the imports with `ast`: every import runs down a floor
or within a part, never up and never in a circle, and each package's config.py imports nothing else of its package."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

# The allowed arrows, written once: a part may import the parts listed (and itself).
ARROWS = {
    "infra": set(),
    "patterns": set(),
    "codec": {"infra"},
    "codec.train": {"codec", "infra"},
    "musicgen": {"codec", "patterns", "infra"},
    "musicgen.train": {"musicgen", "codec", "patterns", "infra"},
    "synthetic": {"infra"},
    "evaluation": {"musicgen", "synthetic", "codec.train", "codec", "infra"},
    "webapp": {"musicgen", "infra"},  # the web page over the MusicGen API: the top floor, beside evaluation
}
CONFIG_MODULES = ["codec.config", "codec.train.config", "musicgen.config", "musicgen.train.config", "infra.config"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """Every module of the parts above, by dotted name."""
    roots = {name.split(".")[0] for name in ARROWS}
    return {module_name(path): path for root in roots for path in sorted((ROOT / root).rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports (relative imports resolved; `from package import module` counted as the
    module), including imports inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules)
    return found - {name}


def part_of(module: str) -> str:
    """The part a module belongs to: the longest key of ARROWS it starts with."""
    return max((part for part in ARROWS if module == part or module.startswith(part + ".")), key=len)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_every_import_runs_down_a_floor_or_within_its_part(graph):
    wrong = sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                   if part_of(target) != part_of(module) and part_of(target) not in ARROWS[part_of(module)])
    assert not wrong, "imports against the floors:\n" + "\n".join(wrong)


def test_no_import_circles(graph):
    # Depth-first search for a cycle among module-level imports.
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return trail + [module, target]
            if target not in state and (cycle := visit(target, trail + [module])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [])
            assert cycle is None, "import circle: " + " -> ".join(cycle[cycle.index(cycle[-1]):])


@pytest.mark.parametrize("config", CONFIG_MODULES)
def test_configs_sit_at_the_bottom_of_their_package(graph, config):
    package = config.rpartition(".")[0]
    inside = sorted(target for target in graph[config] if target.rpartition(".")[0] == package)
    assert not inside, f"{config} imports {inside}: a config module imports nothing else of its package"


def test_the_arrows_catch_an_upward_import(tmp_path):
    # The checker itself: a codec module importing musicgen is reported (the test above cannot pass vacuously).
    modules = {"codec.model": tmp_path / "model.py", "musicgen.lm": tmp_path / "lm.py"}
    modules["codec.model"].write_text("from musicgen.lm import LM\n")
    graph = {"codec.model": imports_of("codec.model", modules["codec.model"], modules)}
    assert graph["codec.model"] == {"musicgen.lm"}
    assert part_of("musicgen.lm") not in ARROWS[part_of("codec.model")]
