"""Shared test plumbing: PyTorch as the oracle.

Tests that compare with PyTorch take the `torch` fixture: it skips the test where torch is not
importable, and the run's summary says how many were skipped that way. CI (`.ci/run`) installs
torch and sets AUTOTENSOR_REQUIRE_TORCH=1, which turns a missing torch into an error, so the
parity tests can never silently stop running there.

The comparison those tests share lives in torch_compare.py beside this file; this folder is put
on sys.path so that a test file says `from torch_compare import assert_matches_torch`.
"""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))   # for torch_compare

TORCH_SKIP = "PyTorch parity: torch is not installed (pip install torch==2.13.0)"


def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def pytest_configure(config):
    if os.environ.get("AUTOTENSOR_REQUIRE_TORCH") == "1" and _torch_or_none() is None:
        raise pytest.UsageError("AUTOTENSOR_REQUIRE_TORCH=1 but torch is not importable: the "
                                "PyTorch-parity tests would be skipped")


@pytest.fixture
def torch():
    """PyTorch, or a skip counted in the run's summary."""
    module = _torch_or_none()
    if module is None:
        pytest.skip(TORCH_SKIP)
    return module


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    n = sum(TORCH_SKIP in str(getattr(r, "longrepr", "")) for r in skipped)
    if n:
        terminalreporter.write_line(f"{n} tests skipped: {TORCH_SKIP}")
    elif _torch_or_none() is not None:
        import torch
        terminalreporter.write_line(f"PyTorch-parity tests ran against torch {torch.__version__}")
