"""The package's layers (docs/architecture.md): each module imports only those below it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "wmtutor"
# Bottom to top: a module may import only modules that come before it here.
LAYERS = ["utils", "presets", "layout", "files", "fastcar", "envs", "rollouts", "datasets",
          "training", "mdn", "toys", "vae", "mdnrnn", "joint", "cmaes", "controller", "dream",
          "ppo", "bundle", "viz", "pipeline", "beyond", "play", "cli"]  # fmt: skip
# Imports inside functions, allowed only for optional or heavy packages (see each's comment;
# wmtutor.fastcar brings pygame and Box2D, which only CarRacing needs).
LAZY = {"torch", "ctypes", "vizdoom", "cma", "distributed", "ipywidgets", "IPython.display",
        "importlib", "wmtutor.pipeline", "pygame", "moviepy", "wmtutor.fastcar",
        "stable_baselines3"}  # fmt: skip


def imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(module, at top level?) for every import in a module."""
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, id(node) in top or node.level > 0))
    return found


def test_every_module_has_a_layer():
    assert sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__") == sorted(LAYERS)


@pytest.mark.parametrize("name", LAYERS)
def test_a_module_imports_only_downward_and_lazily_only_optional_packages(name):
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    below = set(LAYERS[: LAYERS.index(name)])
    for module, at_top in imports(tree):
        if module.startswith("wmtutor.") or module == "wmtutor":
            target = module.split(".")[1] if "." in module else None
            if target is not None:
                lazy_ok = not at_top and (module in LAZY or name == "cli")  # cli: see its doc
                assert target in below or lazy_ok, (
                    f"wmtutor.{name} imports {module}, which is not below it"
                )
        if not at_top and not (name == "cli" and module.startswith("wmtutor")):
            assert module in LAZY or module.split(".")[0] in LAZY, (
                f"wmtutor.{name} imports {module} inside a function"
            )


def test_gathering_workers_never_load_torch():
    import subprocess
    import sys

    code = "import sys, wmtutor.rollouts, wmtutor.files; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_make_test_runs_the_notebooks_in_order_on_one_worker_and_shared_setups_together():
    # The root conftest's scheduler (pytest-xdist): a notebook split over two workers would
    # run cells without the kernel state they need; a SHARED_SETUP module split over two
    # would train its module fixture's models twice.
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    scope_of = conftest.scope_of
    assert {scope_of(f"notebooks/0{i}_x.ipynb::Cell {i}") for i in range(1, 9)} == {"notebooks"}
    for module in conftest.SHARED_SETUP:
        assert scope_of(f"{module}::test_a") == scope_of(f"{module}::test_b[1]") == module
        assert 'scope="module"' in (ROOT / module).read_text(), f"{module} shares no setup"
    assert scope_of("tests/test_vae.py::test_a") == "tests/test_vae.py::test_a"
    assert scope_of("tests/test_vae.py::test_b") != scope_of("tests/test_vae.py::test_a")
