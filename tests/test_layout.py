"""The package's dependency rules, checked on every module (see the README's layout section).

* The library (everything but ``training/``, ``experiments/`` and ``cli/``) never imports them, accelerate,
  tqdm or argparse; ``training/`` imports only the library; ``experiments/`` (the programs ``bench paper`` and
  ``demo`` run) the library and ``training/``, never ``cli/`` or argparse; ``models/base`` imports none of the
  models; ``bench/`` imports no ``cli/`` module.
* Every ``cli/`` module parses and prints: none is over 150 lines.
* ``flow/``, ``pseudomask/`` and ``losses`` take plain numbers: they import none of ``config``, ``models``,
  ``training`` or ``cli``; ``config`` imports no ``flow/``.
* No import circles between semflow's modules, and no module whose only content forwards names elsewhere.

Two checks: each module imported in isolation (all ``semflow`` modules dropped from ``sys.modules`` first,
in one subprocess) must not load a forbidden ``semflow`` module; and no import statement of a module (at any
depth, function-level ones included) names a forbidden package, since third-party packages (diffusers loads
tqdm) cannot be unloaded between modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "semflow"
LAYERS = ("semflow.training", "semflow.experiments", "semflow.cli")
THIRD_PARTY = ("accelerate", "tqdm", "argparse")
MODELS = ("semflow.models.semflow", "semflow.models.dsm", "semflow.models.discriminative")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def in_layer(name: str, layer: str) -> bool:
    return name == layer or name.startswith(layer + ".")


def imported_names(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names (relative imports do not occur in semflow)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    """For each module, the ``semflow`` modules importing it alone loads."""
    script = f"""
import json, sys, importlib, warnings
warnings.simplefilter("ignore")
out = {{}}
for name in {MODULES!r}:
    for key in [k for k in sys.modules if k == "semflow" or k.startswith("semflow.")]:
        del sys.modules[key]
    importlib.import_module(name)
    out[name] = sorted(k for k in sys.modules if k.startswith("semflow."))
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout.splitlines()[-1])


def test_every_module_is_checked(loaded):
    assert "semflow.models.base" in loaded and "semflow.training.loop" in loaded and len(loaded) == len(MODULES)


@pytest.mark.parametrize("name", [m for m in MODULES if not any(in_layer(m, layer) for layer in LAYERS)])
def test_library_modules_load_neither_training_nor_cli(loaded, name):
    assert [m for m in loaded[name] if any(in_layer(m, layer) for layer in LAYERS)] == []


@pytest.mark.parametrize("name", [m for m in MODULES if in_layer(m, "semflow.training")])
def test_training_modules_load_neither_experiments_nor_cli(loaded, name):
    assert [m for m in loaded[name] if in_layer(m, "semflow.cli") or in_layer(m, "semflow.experiments")] == []


@pytest.mark.parametrize("name", [m for m in MODULES if in_layer(m, "semflow.experiments")])
def test_experiments_load_no_cli(loaded, name):
    assert [m for m in loaded[name] if in_layer(m, "semflow.cli")] == []


@pytest.mark.parametrize("path", sorted((PACKAGE / "cli").glob("*.py")), ids=lambda p: p.name)
def test_command_modules_only_parse_and_print(path):
    assert len(path.read_text().splitlines()) <= 150


def test_models_base_loads_none_of_the_models(loaded):
    assert [m for m in loaded["semflow.models.base"] if m in MODELS] == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_import_statements_follow_the_layers(path):
    name = module_name(path)
    names = imported_names(path)
    if in_layer(name, "semflow.cli") or path.name == "__main__.py":
        return  # the top layer (and python -m semflow, which runs it) may use everything
    forbidden = ["semflow.cli", "argparse"]
    if not in_layer(name, "semflow.experiments"):
        forbidden.append("semflow.experiments")
        if not in_layer(name, "semflow.training"):
            forbidden += ["semflow.training", "accelerate", "tqdm"]
    assert sorted(n for n in names if any(in_layer(n, f) for f in forbidden)) == []


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("*.py")), ids=lambda p: p.name)
def test_benchmarks_import_no_cli_module(path):
    assert sorted(n for n in imported_names(path) if in_layer(n, "semflow.cli")) == []


BASE_LAYERS = ("semflow.flow", "semflow.pseudomask", "semflow.losses")
ABOVE_THEM = ("semflow.config", "semflow.models", "semflow.training", "semflow.cli")


@pytest.mark.parametrize("name", [m for m in MODULES if any(in_layer(m, layer) for layer in BASE_LAYERS)])
def test_flow_and_pseudomasks_load_no_config_models_training_or_cli(loaded, name):
    assert [m for m in loaded[name] if any(in_layer(m, layer) for layer in ABOVE_THEM)] == []
    names = imported_names(module_path(name))
    assert sorted(n for n in names if any(in_layer(n, layer) for layer in ABOVE_THEM)) == []


def test_config_loads_no_flow(loaded):
    assert [m for m in loaded["semflow.config"] if in_layer(m, "semflow.flow")] == []
    assert [n for n in imported_names(PACKAGE / "config.py") if in_layer(n, "semflow.flow")] == []


def module_path(name: str) -> Path:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"


def import_graph() -> dict[str, set[str]]:
    """Each module to the semflow modules its import statements name (any depth; ``from a import b`` names
    ``a.b`` where that is a module, else ``a``); a package's ``__init__`` is left out as a target of its own
    submodules, which Python loads first anyway."""
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        targets = set()
        for n in imported_names(module_path(name)):
            if not in_layer(n, "semflow"):
                continue
            while n not in MODULES and "." in n:
                n = n.rsplit(".", 1)[0]
            if n in MODULES and n != name and not in_layer(name, n):
                targets.add(n)
        graph[name] = targets
    return graph


def test_no_import_circles():
    graph, circles = import_graph(), []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in MODULES:
        if name not in state:
            visit(name, [name])
    assert circles == []


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_only_forwards_names(path):
    body = [n for n in ast.parse(path.read_text()).body
            if not isinstance(n, (ast.Import, ast.ImportFrom)) and not (isinstance(n, ast.Expr)
                                                                       and isinstance(n.value, ast.Constant))]
    defines = any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) for n in body)
    assert defines or path.name in ("__main__.py", "_version.py"), f"{path} defines nothing of its own"
