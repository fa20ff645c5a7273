"""Packaging: one import package `autotensor`, never top-level `nn` or `optim` modules."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_subpackages_resolve_to_the_repo_folders():
    from autotensor import nn, optim
    assert pathlib.Path(nn.__file__).parent.name == "nn"
    assert pathlib.Path(optim.__file__).parent.name == "optim"
    assert nn.__name__ == "autotensor.nn" and optim.__name__ == "autotensor.optim"


def test_no_code_imports_top_level_nn_or_optim():
    offenders = []
    for path in ROOT.glob("**/*.py"):
        if ".venv" in path.parts or "build" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in ("nn", "optim")]
    assert not offenders


@pytest.mark.slow
def test_wheel_ships_one_package(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("autotensor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"autotensor"}, tops
    assert "autotensor/nn/__init__.py" in names and "autotensor/optim/__init__.py" in names
    assert "autotensor/datasets/digits.npz" in names
    assert "autotensor/datasets/macbeth.txt" in names


def _imported_modules(path):
    """Absolute names of the autotensor modules a file imports (relative imports resolved)."""
    package = ".".join(("autotensor",) + path.relative_to(ROOT / "autotensor").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level \
                else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.update([module] + [f"{module}.{a.name}" for a in node.names])
    return {m for m in out if m.startswith("autotensor")}


ENGINE = ["tensor.py", "function.py", "autograd.py", "ops/*.py", "fused/*.py"]
UPPER = ("autotensor.nn", "autotensor.optim", "autotensor.viz", "autotensor.data",
         "autotensor.plot", "autotensor.sweep")


def test_the_engine_imports_nothing_above_it():
    """core <- nn <- optim: the tape draws, loads and trains nothing (docs/architecture.md)."""
    offenders = [f"{path.relative_to(ROOT)} imports {m}"
                 for pattern in ENGINE for path in (ROOT / "autotensor").glob(pattern)
                 for m in _imported_modules(path) if m.startswith(UPPER)]
    assert not offenders


def test_nn_does_not_import_optim_and_kernels_do_not_import_each_other():
    nn_files = [p for p in (ROOT / "nn").glob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in nn_files
                 if "from autotensor.optim" in p.read_text() or "import autotensor.optim"
                 in p.read_text()]
    assert not offenders
    numba_imports = _imported_modules(ROOT / "autotensor" / "fused" / "kernels_numba.py")
    assert not any(m.startswith("autotensor.fused.kernels.") or m == "autotensor.fused.kernels"
                   for m in numba_imports), numba_imports
