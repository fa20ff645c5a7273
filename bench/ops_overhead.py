"""Per-op overhead of the tape: autotensor vs PyTorch CPU eager (when torch is installed).

Cases (float64, forward + backward, the garbage collector left on as in real use):
  chain : 1,000 elementwise ops on a (4, 4) tensor; reports microseconds per op
  mlp   : one SGD step of a 3-layer MLP (784-256-256-10) on a batch of 64
  hvp   : a Hessian-vector product of a 784-256-10 MLP's cross-entropy loss (batch 64) with
          respect to its four parameter tensors: at.functional.hvp vs
          torch.autograd.functional.hvp (second-order: create_graph, then a second backward)

Prints medians and the ratio autotensor / PyTorch (lower is better; target <= 1.0). Timing as
in bench/timing.py: blocks of calls rotated three times; PyTorch in a worker process (run
before and after autotensor, medians pooled) with as many threads as autotensor.
Usage: python bench/ops_overhead.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
from timing import run_worker, thread_count, timed_blocks

import autotensor as at

CHAIN = 1000


# ---- autotensor ---------------------------------------------------------------------------------
def at_chain():
    x = at.Tensor(np.random.rand(4, 4) + 0.5, requires_grad=True)
    y = x
    for i in range(CHAIN // 4):
        y = ((y * 1.001 + 0.01).tanh() - 0.5) if i % 2 else ((y - 0.5) * 0.999 + 0.5).tanh()
    y.sum().backward()


def make_at_mlp(rng):
    sizes = [784, 256, 256, 10]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(at.Tensor(rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in),
                                requires_grad=True))
        params.append(at.Tensor(np.zeros(fan_out), requires_grad=True))
    x = rng.standard_normal((64, 784))
    y = rng.integers(0, 10, 64)

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


def torch_cases(rng, threads):
    import torch
    torch.set_num_threads(threads)

    def chain():
        x = torch.tensor(np.random.rand(4, 4) + 0.5, requires_grad=True)
        y = x
        for i in range(CHAIN // 4):
            y = ((y * 1.001 + 0.01).tanh() - 0.5) if i % 2 else ((y - 0.5) * 0.999 + 0.5).tanh()
        y.sum().backward()

    sizes = [784, 256, 256, 10]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(torch.tensor(rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in),
                                   requires_grad=True))
        params.append(torch.zeros(fan_out, dtype=torch.float64, requires_grad=True))
    x = torch.tensor(rng.standard_normal((64, 784)))
    y = torch.tensor(rng.integers(0, 10, 64))

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
    chain, mlp = torch_cases(np.random.default_rng(0), args.threads)
    hvp = torch_hvp(np.random.default_rng(1))
    times = timed_blocks({"chain": chain, "mlp": mlp, "hvp": hvp}, args.repeats)
    print(json.dumps({"version": torch.__version__, **times}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args)
    args.threads = thread_count()
    worker_args = ["--threads", args.threads, "--repeats", args.repeats]
    runs = [run_worker(__file__, worker_args)]
    ours = timed_blocks({"chain": at_chain, "mlp": make_at_mlp(np.random.default_rng(0)),
                         "hvp": make_at_hvp(np.random.default_rng(1))}, args.repeats)
    runs.append(run_worker(__file__, worker_args))
    theirs = {}
    if runs[0] and runs[1]:
        theirs = {case: runs[0][case] + runs[1][case] for case in ours}
        print(f"PyTorch {runs[0]['version']} (CPU), worker process, {args.threads} threads")
    else:
        print("torch not installed: printing autotensor's times only "
              "(pip install torch==2.13.0 for the comparison)")

    print(f"{'case':<8}{'autotensor':>16}{'pytorch':>16}{'ratio':>8}")
    for case, scale, unit in (("chain", 1e6 / CHAIN, "us/op"), ("mlp", 1e3, "ms/step"),
                              ("hvp", 1e3, "ms/hvp")):
        a = statistics.median(ours[case]) * scale
        line = f"{case:<8}{a:>10.2f} {unit:<6}"
        if case in theirs:
            b = statistics.median(theirs[case]) * scale
            line += f"{b:>9.2f} {unit:<6}{a / b:>8.2f}"
        print(line)


if __name__ == "__main__":
    main()
