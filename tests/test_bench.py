"""The bench/ scripts run and print every case (a smoke run: no timing is asserted)."""

from __future__ import annotations

import importlib.util
import pathlib
import re
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



@pytest.mark.slow
def test_conv_groups_prints_every_case():
    out = run("conv_groups.py", "--repeats", "1", "--dtypes", "float32", "--no-twin")
    for case in ("depthwise float32", "groups=2 float32", "groups=1 float32"):
        assert case in out
    assert out.count("fused") == 3

# bench/peers.py's engine labels and the module each needs
PEERS = {"pytorch": "torch", "jax-eager": "jax", "jax-jit": "jax", "tinygrad": "tinygrad",
         "mygrad": "mygrad", "autograd": "autograd"}


@pytest.mark.slow
def test_peers_quick_run_checks_the_loss_of_every_installed_peer():
    proc = subprocess.run([sys.executable, str(BENCH / "peers.py"), "--quick"],
                          capture_output=True, text=True, timeout=1200)
    out = proc.stdout
    installed = [label for label, module in PEERS.items() if importlib.util.find_spec(module)]
    if not installed:
        assert proc.returncode == 0, proc.stderr
        assert "No peer engine installed" in out
        return
    assert proc.returncode == 0 and "MISMATCH" not in out, out + proc.stderr
    status = {}                 # {label: [its status line per dtype]}
    for line in out.splitlines():
        if match := re.match(r"  (\S+): (.*)", line):
            status.setdefault(match[1], []).append(match[2])
    assert "| float64 (median)" in out and "| float32 (median)" in out
    assert len(re.findall(r"\| chain \(us/op\) +\| +\d", out)) == 2     # autotensor's times
    assert all("loss check passed (chain, mlp, convnet, hvp)" in s for s in status["autotensor"])
    assert len(status["autotensor"]) == 2
    for label in installed:     # a peer that cannot run here (tinygrad without clang) says why
        assert len(status[label]) == 2 and all(
            "loss check passed" in s or s.startswith("n/a (") for s in status[label]), status
    if "pytorch" in installed:
        assert all("loss check passed (chain, mlp, convnet, hvp)" in s
                   for s in status["pytorch"]), status["pytorch"]


def test_peers_prints_mismatch_instead_of_the_time(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    peers = importlib.import_module("peers")

    def result(checks):
        return {"version": "0", "load": 0.0, "checks": {"mlp": checks}, "skipped": {},
                "times": {"mlp": [0.002, 0.001, 0.003]}, "peak_mib": 1.0}
    results = {"autotensor": result([2.0, 1.0]), "pytorch": result([2.0 * (1 + 1e-5), 1.0])}
    assert peers.compare(results, "float32") == {"autotensor": {"mlp": None},
                                                 "pytorch": {"mlp": None}}
    verdicts = peers.compare(results, "float64")         # 1e-5 apart: over float64's 1e-6
    assert verdicts["autotensor"] == {"mlp": None}
    assert verdicts["pytorch"]["mlp"].startswith("MISMATCH: pytorch float64 mlp")
    peers.report("float64", results, verdicts, peers.SIZES)
    mlp_row = next(line for line in capsys.readouterr().out.splitlines() if "mlp (" in line)
    cells = [c.strip() for c in mlp_row.split("|")[2:4]]
    assert cells == ["2", "MISMATCH"]          # autotensor's median (ms), and no time for torch
