"""Layer speed: autotensor fused vs composite twin vs course-style naive loops vs PyTorch CPU.

For each case and dtype (float64, float32) it times the forward pass alone and forward +
backward (fresh input tensors per call, upstream gradient of ones) and prints medians (ms)
and each one's ratio to PyTorch (lower is better).

How it measures (bench/timing.py): blocks of consecutive calls rotated three times, so a
slow spell of this shared machine hits every implementation alike; PyTorch in a worker
process, run once before and once after the autotensor cases (its medians pool both runs),
with as many threads as autotensor (numba's count).
- The naive loops are slow: they run on the first `--naive-n` samples of the batch, 3 times
  (1 with --quick), and are scaled linearly to the full batch ("naive*" rows).

Conv rows also print the GFLOP/s reached (GEMM work of the call over its median time).

Usage: python bench/layers.py [--quick] [--repeats N] [--only conv|pool|bn|models]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from timing import run_worker, thread_count, timed_blocks

CONV = [((100, 3, 31, 31), (25, 3, 3, 3), 2, 1), ((50, 3, 32, 32), (32, 3, 7, 7), 1, 3),
        ((64, 64, 16, 16), (64, 64, 3, 3), 1, 1)]
POOL = [(100, 3, 32, 32), (50, 32, 32, 32)]
BN = [(100, 500), (50, 32, 32, 32)]
LR = 1e-3


def cases(only, dtypes):
    """(key, kind, spec, dtype, backward) for every timed case, in print order."""
    out = []
    for dt in dtypes:
        specs = [("conv", c) for c in CONV] + [("pool", p) for p in POOL] + \
            [("bn", b) for b in BN] + [("convnet", 50), ("fcnet", 100)]
        for kind, spec in specs:
            group = "models" if kind in ("convnet", "fcnet") else kind
            if only not in (None, group):
                continue
            for backward in ((True,) if group == "models" else (False, True)):
                key = f"{kind} {spec} {dt} {'fwd+bwd' if backward else 'fwd'}"
                out.append((key, kind, spec, dt, backward))
    return out


def conv_gflop(spec, backward):
    """GEMM work of one call: 2*N*F*C*HH*WW*Ho*Wo per pass, 3 passes with the backward."""
    (N, C, H, W), (F, _, HH, WW), s, p = spec
    Ho, Wo = (H + 2 * p - HH) // s + 1, (W + 2 * p - WW) // s + 1
    return (3 if backward else 1) * 2 * N * F * C * HH * WW * Ho * Wo / 1e9


def case_arrays(kind, spec, dtype):
    rng = np.random.default_rng(0)
    if kind == "conv":
        xs, ws = spec[:2]
        return [rng.standard_normal(s).astype(dtype) for s in (xs, ws, (ws[0],))]
    if kind == "pool":
        return [rng.standard_normal(spec).astype(dtype)]
    if kind == "bn":
        d = spec[1]
        return [rng.standard_normal(spec).astype(dtype), np.ones(d, dtype), np.zeros(d, dtype)]
    shape = (spec, 3, 32, 32) if kind == "convnet" else (spec, 3072)
    return [rng.standard_normal(shape).astype(dtype), rng.integers(0, 10, spec)]


# ---- PyTorch (run in a worker process) ---------------------------------------------------------
def torch_fn(torch, kind, spec, arrays, backward):
    tf = torch.nn.functional
    if kind in ("convnet", "fcnet"):
        return torch_model_step(torch, kind, arrays)
    op = {"conv": lambda x, w, b: tf.conv2d(x, w, b, stride=spec[2], padding=spec[3]),
          "pool": lambda x: tf.max_pool2d(x, 2),
          "bn": lambda x, g, b: tf.batch_norm(x, None, None, g, b, training=True)}[kind]

    def run():
        ts = [torch.from_numpy(a).requires_grad_(backward) for a in arrays]
        if not backward:
            with torch.no_grad():
                return op(*ts)
        out = op(*ts)
        out.backward(torch.ones_like(out))
    return run


def torch_model_step(torch, kind, arrays):
    """One SGD step of the same network as autotensor's model (weights drawn alike)."""
    nn, tf = torch.nn, torch.nn.functional
    dtype = getattr(torch, str(arrays[0].dtype))
    if kind == "convnet":           # conv 7x7 pad 3 - relu - pool - affine - relu - affine
        net = nn.Sequential(nn.Conv2d(3, 32, 7, padding=3), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(32 * 16 * 16, 100), nn.ReLU(),
                            nn.Linear(100, 10))
    else:                           # [affine - batchnorm - relu] x 5 - affine
        layers, d = [], 3072
        for _ in range(5):
            layers += [nn.Linear(d, 100), nn.BatchNorm1d(100, momentum=0.1), nn.ReLU()]
            d = 100
        net = nn.Sequential(*layers, nn.Linear(100, 10))
    net = net.to(dtype)
    x, y = torch.from_numpy(arrays[0]), torch.from_numpy(arrays[1])

    def step():
        loss = tf.cross_entropy(net(x), y)
        net.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= LR * p.grad
    return step


def torch_worker(args):
    import torch
    torch.set_num_threads(args.threads)
    result = {"version": torch.__version__}
    for key, kind, spec, dt, backward in cases(args.only, args.dtypes):
        arrays = case_arrays(kind, spec, np.dtype(dt))
        result[key] = timed_blocks({"torch": torch_fn(torch, kind, spec, arrays, backward)},
                                   args.repeats)["torch"]
    print(json.dumps(result))


def run_torch_worker(args):
    """{case key: [seconds]} from PyTorch in a worker process, or None without torch."""
    extra = ["--threads", args.threads, "--repeats", args.repeats, "--dtypes", *args.dtypes]
    return run_worker(__file__, extra + (["--only", args.only] if args.only else []))


# ---- autotensor --------------------------------------------------------------------------------
def at_fns(kind, spec, arrays, backward):
    """{'fused': fn, 'composite': fn} for one case."""
    import autotensor as at
    from autotensor import fused

    if kind in ("convnet", "fcnet"):
        return {name: at_model_step(kind, arrays, on) for name, on in (("fused", True),
                                                                          ("composite", False))}
    d = arrays[0].shape[1]
    rm, rv = np.zeros(d, arrays[0].dtype), np.ones(d, arrays[0].dtype)
    op = {"conv": lambda x, w, b: fused.conv2d(x, w, b, stride=spec[2], pad=spec[3]),
          "pool": lambda x: fused.max_pool2d(x, 2),
          "bn": lambda x, g, b: fused.batch_norm(x, g, b, rm, rv, training=True)}[kind]

    def make(on):
        def run():
            ts = [at.Tensor(a, requires_grad=backward) for a in arrays]
            with at.use_fused(on):
                if not backward:
                    with at.no_grad():
                        return op(*ts)
                out = op(*ts)
                out.backward(np.ones_like(out.data))
        return run
    return {"fused": make(True), "composite": make(False)}


def at_model_step(kind, arrays, fused_on):
    import autotensor as at
    from autotensor.nn import models

    np.random.seed(0)
    dtype = arrays[0].dtype
    if kind == "convnet":
        model = models.ThreeLayerConvNet(weight_scale=1e-2, dtype=dtype)
    else:
        model = models.FullyConnectedNet([100] * 5, normalization="batchnorm",
                                         weight_scale=5e-2, dtype=dtype)
    x, y = arrays

    def step():
        with at.use_fused(fused_on):
            _, grads = model.loss(x, y)
        for k, g in grads.items():
            model.params[k] -= LR * g
    return step


def naive_fn(kind, spec, arrays, n, backward):
    """The course-style loops on the first n samples, or None where the course has none."""
    from autotensor.nn import layers
    x = arrays[0][:n]
    if kind == "conv":
        param = {"stride": spec[2], "pad": spec[3]}
        out, cache = layers.conv_forward_naive(x, arrays[1], arrays[2], param)
        if backward:
            return lambda: layers.conv_backward_naive(np.ones_like(out), cache)
        return lambda: layers.conv_forward_naive(x, arrays[1], arrays[2], param)
    if kind == "pool":
        param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        out, cache = layers.max_pool_forward_naive(x, param)
        if backward:
            return lambda: layers.max_pool_backward_naive(np.ones_like(out), cache)
        return lambda: layers.max_pool_forward_naive(x, param)
    return None


# ---- report ------------------------------------------------------------------------------------
def report(key, rows, torch_ms):
    print(f"\n{key}")
    for name, ms in rows.items():
        ratio = f"{ms / torch_ms:8.2f}x torch" if torch_ms else ""
        print(f"  {name:<12s} {ms:10.3f} ms {ratio}")
    if torch_ms:
        print(f"  {'torch':<12s} {torch_ms:10.3f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repeats, for a smoke run")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per implementation")
    ap.add_argument("--naive-n", type=int, default=None, help="samples timed by naive loops")
    ap.add_argument("--only", choices=["conv", "pool", "bn", "models"], default=None)
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.repeats = args.repeats or (3 if args.quick else 15)
    if args.torch_worker:
        return torch_worker(args)

    from autotensor.fused import kernels
    args.threads = thread_count()
    naive_n, naive_reps = args.naive_n or (1 if args.quick else 4), 1 if args.quick else 3
    print(f"autotensor kernels: {kernels.BACKEND}; threads {args.threads}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; repeats {args.repeats} (medians)")
    torch_runs = [run_torch_worker(args)]
    results, gflop = {}, {}
    for key, kind, spec, dt, backward in cases(args.only, args.dtypes):
        if kind == "conv":
            gflop[key] = conv_gflop(spec, backward)
        arrays = case_arrays(kind, spec, np.dtype(dt))
        times = timed_blocks(at_fns(kind, spec, arrays, backward), args.repeats)
        naive = naive_fn(kind, spec, arrays, naive_n, backward)
        if naive is not None:
            scale = arrays[0].shape[0] / arrays[0][:naive_n].shape[0]
            times["naive*"] = [t * scale for t in timed_blocks({"n": naive}, naive_reps, 1)["n"]]
        results[key] = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    torch_runs.append(run_torch_worker(args))
    if torch_runs[0]:
        print(f"PyTorch {torch_runs[0]['version']} (CPU), worker process, {args.threads} threads")
    else:
        print("PyTorch not installed: no comparison column")
    for key, rows in results.items():
        torch_ms = statistics.median(torch_runs[0][key] + torch_runs[1][key]) * 1e3 \
            if torch_runs[0] and torch_runs[1] else None
        report(key + (" (naive*: backward only)" if "naive*" in rows and
                      key.endswith("fwd+bwd") else ""), rows, torch_ms)
        if key in gflop:
            rates = [f"fused {gflop[key] / rows['fused'] * 1e3:.1f}"]
            rates += [f"torch {gflop[key] / torch_ms * 1e3:.1f}"] if torch_ms else []
            print(f"  GFLOP/s      {', '.join(rates)} ({gflop[key]:.3f} GFLOP a call)")
        fwd = results.get(key.replace("fwd+bwd", "fwd"))
        if key.endswith("fwd+bwd") and fwd and "naive*" in rows:
            bwd = rows["fused"] - fwd["fused"]
            print(f"  fused backward alone ~{bwd:.3f} ms: naive*/fused {rows['naive*'] / bwd:.0f}x;"
                  f" composite/fused (fwd+bwd) {rows['composite'] / rows['fused']:.1f}x")


if __name__ == "__main__":
    main()
