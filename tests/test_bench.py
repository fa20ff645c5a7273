"""The bench/ scripts run and print every case (a smoke run: no timing is asserted)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


def run(script, *args):
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_ops_overhead_prints_both_cases():
    out = run("ops_overhead.py", "--repeats", "2")
    assert "chain" in out and "us/op" in out and "mlp" in out and "ms/step" in out


@pytest.mark.slow
def test_layers_quick_run_prints_fused_and_composite_rows():
    out = run("layers.py", "--quick", "--only", "bn", "--dtypes", "float64")
    for case in ("bn (100, 500) float64 fwd", "bn (50, 32, 32, 32) float64 fwd+bwd"):
        assert case in out
    assert out.count("fused") >= 4 and out.count("composite") >= 4
