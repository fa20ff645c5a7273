"""Per-op overhead of the tape: autotensor vs PyTorch CPU eager (when torch is installed).

Cases (forward + backward, in float64 and float32, the garbage collector left on as in real
use):
  chain : 1,000 elementwise ops on a (4, 4) tensor; reports microseconds per op
  mlp   : one SGD step of a 3-layer MLP (784-256-256-10) on a batch of 64
  hvp   : a Hessian-vector product of a 784-256-10 MLP's cross-entropy loss (batch 64) with
          respect to its four parameter tensors: at.functional.hvp vs
          torch.autograd.functional.hvp (second-order: create_graph, then a second backward)

Prints medians and the ratio autotensor / PyTorch (lower is better; targets: chain <= 0.6,
mlp <= 0.8, issue 15). Timing as in bench/timing.py: blocks of calls rotated three times;
PyTorch in a worker process (run before and after autotensor, medians pooled) with as many
threads as autotensor. `--cpu` times CPU seconds of this process (time.process_time) with one
thread each instead of wall time: on a machine shared with other jobs, wall time measures the
neighbours' load, CPU time mostly our own work.
Usage: python bench/ops_overhead.py [--repeats N] [--dtypes float64 float32] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import types

# --cpu: one thread each, fixed before numpy loads its BLAS (idle BLAS threads spin, and CPU
# time would count the spinning).
if "--cpu" in sys.argv:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        os.environ[_var] = "1"

import numpy as np  # noqa: E402
import timing  # noqa: E402
from timing import run_worker, thread_count, timed_blocks  # noqa: E402

import autotensor as at  # noqa: E402

CHAIN = 1000


# ---- autotensor ---------------------------------------------------------------------------------
def make_at_chain(dtype):
    def chain():
        x = at.Tensor((np.random.rand(4, 4) + 0.5).astype(dtype), requires_grad=True)
        y = x
        for i in range(CHAIN // 4):
            y = ((y * 1.001 + 0.01).tanh() - 0.5) if i % 2 else ((y - 0.5) * 0.999 + 0.5).tanh()
        y.sum().backward()
    return chain


def _mlp_data(rng, dtype):
    """784-256-256-10 weights (He init), zero biases, a batch of 64 with labels."""
    sizes = [784, 256, 256, 10]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append((rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in))
                      .astype(dtype))
        params.append(np.zeros(fan_out, dtype))
    return params, rng.standard_normal((64, 784)).astype(dtype), rng.integers(0, 10, 64)


def make_at_mlp(rng, dtype=np.float64):
    params, x, y = _mlp_data(rng, dtype)
    params = [at.Tensor(p, requires_grad=True) for p in params]

    def step():
        h = at.Tensor(x)
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i < len(params) - 2:
                h = h.relu()
        logp = h.log_softmax(axis=1)
        loss = -logp[np.arange(64), y].mean()
        loss.backward()
        for p in params:
            p.data -= 1e-3 * p.grad
            p.grad = None
    return step


def _hvp_data(rng):
    """784-256-10 MLP parameters, a direction for each, a batch of 64 with labels."""
    params = [rng.standard_normal((784, 256)) * np.sqrt(2 / 784), np.zeros(256),
              rng.standard_normal((256, 10)) * np.sqrt(2 / 256), np.zeros(10)]
    v = [rng.standard_normal(p.shape) for p in params]
    return params, v, rng.standard_normal((64, 784)), rng.integers(0, 10, 64)


def make_at_hvp(rng):
    params, v, x, y = _hvp_data(rng)
    params, v = tuple(at.Tensor(p) for p in params), tuple(at.Tensor(d) for d in v)

    def loss(w1, b1, w2, b2):
        logits = (at.Tensor(x) @ w1 + b1).tanh() @ w2 + b2
        return -logits.log_softmax(axis=1)[np.arange(64), y].mean()

    def step():
        at.functional.hvp(loss, params, v)
    return step


# ---- PyTorch ------------------------------------------------------------------------------------
def torch_hvp(rng):
    import torch
    params, v, x, y = _hvp_data(rng)
    params, v = tuple(torch.tensor(p) for p in params), tuple(torch.tensor(d) for d in v)
    x, y = torch.tensor(x), torch.tensor(y)

    def loss(w1, b1, w2, b2):
        return torch.nn.functional.cross_entropy(torch.tanh(x @ w1 + b1) @ w2 + b2, y)

    def step():
        torch.autograd.functional.hvp(loss, params, v)
    return step


def torch_cases(rng, threads, dtype=np.float64):
    import torch
    torch.set_num_threads(threads)

    def chain():
        x = torch.tensor((np.random.rand(4, 4) + 0.5).astype(dtype), requires_grad=True)
        y = x
        for i in range(CHAIN // 4):
            y = ((y * 1.001 + 0.01).tanh() - 0.5) if i % 2 else ((y - 0.5) * 0.999 + 0.5).tanh()
        y.sum().backward()

    params, x, y = _mlp_data(rng, dtype)
    params = [torch.tensor(p, requires_grad=True) for p in params]
    x, y = torch.tensor(x), torch.tensor(y)

    def mlp():
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i < len(params) - 2:
                h = h.relu()
        loss = torch.nn.functional.cross_entropy(h, y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 1e-3 * p.grad
                p.grad = None
    return chain, mlp


def torch_worker(args):
    import torch
    fns = {}
    for dtype in args.dtypes:
        chain, mlp = torch_cases(np.random.default_rng(0), args.threads, dtype)
        fns.update({f"chain {dtype}": chain, f"mlp {dtype}": mlp})
    fns["hvp float64"] = torch_hvp(np.random.default_rng(1))
    print(json.dumps({"version": torch.__version__, **timed_blocks(fns, args.repeats)}))


def _cpu_clock(enabled):
    """Make timed_blocks read time.process_time (this process's CPU seconds) instead."""
    if enabled:
        timing.time = types.SimpleNamespace(perf_counter=time.process_time)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"],
                        choices=["float64", "float32"])
    parser.add_argument("--cpu", action="store_true",
                        help="CPU time of this process, one thread each (see the docstring)")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _cpu_clock(args.cpu)
    if args.torch_worker:
        return torch_worker(args)
    args.threads = 1 if args.cpu else thread_count()
    worker_args = ["--threads", args.threads, "--repeats", args.repeats,
                   "--dtypes", *args.dtypes] + (["--cpu"] if args.cpu else [])
    runs = [run_worker(__file__, worker_args)]
    fns = {}
    for dtype in args.dtypes:
        fns[f"chain {dtype}"] = make_at_chain(dtype)
        fns[f"mlp {dtype}"] = make_at_mlp(np.random.default_rng(0), dtype)
    fns["hvp float64"] = make_at_hvp(np.random.default_rng(1))
    ours = timed_blocks(fns, args.repeats)
    runs.append(run_worker(__file__, worker_args))
    theirs = {}
    clock = "CPU time" if args.cpu else "wall time"
    if runs[0] and runs[1]:
        theirs = {case: runs[0][case] + runs[1][case] for case in ours}
        print(f"PyTorch {runs[0]['version']} (CPU), worker process, {args.threads} threads, "
              f"{clock}")
    else:
        print("torch not installed: printing autotensor's times only "
              "(pip install torch==2.13.0 for the comparison)")

    print(f"{'case':<16}{'autotensor':>16}{'pytorch':>16}{'ratio':>8}")
    units = {"chain": (1e6 / CHAIN, "us/op"), "mlp": (1e3, "ms/step"), "hvp": (1e3, "ms/hvp")}
    for case in ours:
        scale, unit = units[case.split()[0]]
        a = statistics.median(ours[case]) * scale
        line = f"{case:<16}{a:>10.2f} {unit:<6}"
        if case in theirs:
            b = statistics.median(theirs[case]) * scale
            line += f"{b:>9.2f} {unit:<6}{a / b:>8.2f}"
        print(line)


if __name__ == "__main__":
    main()
