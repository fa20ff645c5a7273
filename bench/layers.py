"""Layer speed: autotensor fused vs composite twin vs course-style naive loops vs PyTorch CPU.

For each case and dtype (float32, float64), times the forward pass alone and forward +
backward, and prints medians (ms) and each one's ratio to PyTorch (lower is better).
Each implementation is timed in blocks of consecutive calls, the blocks rotating three
times, so a slow period of this shared machine hits all of them alike. PyTorch (if
installed) uses as many threads as autotensor (numba's thread count; BLAS uses every core).

The naive loops are slow: they are timed on the first `--naive-n` samples of the batch, on 3
repeats only, and scaled linearly to the full batch ("naive*" rows).

Usage: python bench/layers.py [--quick] [--repeats N] [--dtype float32|float64]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import numpy as np

import autotensor as at
from autotensor import fused

try:
    import torch
except ImportError:              # the comparison column is skipped
    torch = None

try:
    from autotensor.nn import models as at_models
except ImportError:
    at_models = None


# ---- course-style naive loops (the reference the course's fast layers are compared with) -------
def conv_naive_forward(x, w, b, stride, pad):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - HH) // stride + 1, (W + 2 * pad - WW) // stride + 1
    out = np.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    win = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(win * w[f]) + b[f]
    return out, (xp, w, stride, pad)


def conv_naive_backward(dout, cache):
    xp, w, stride, pad = cache
    F, _, HH, WW = w.shape
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for n in range(dout.shape[0]):
        for f in range(F):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    hs, ws = i * stride, j * stride
                    dw[f] += xp[n, :, hs:hs + HH, ws:ws + WW] * dout[n, f, i, j]
                    dxp[n, :, hs:hs + HH, ws:ws + WW] += w[f] * dout[n, f, i, j]
    H, W = xp.shape[2] - 2 * pad, xp.shape[3] - 2 * pad
    return dxp[:, :, pad:pad + H, pad:pad + W], dw, db


def pool_naive_forward(x, k):
    N, C, H, W = x.shape
    out = np.zeros((N, C, H // k, W // k), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H // k):
                for j in range(W // k):
                    out[n, c, i, j] = np.max(x[n, c, i * k:i * k + k, j * k:j * k + k])
    return out, (x, k)


def pool_naive_backward(dout, cache):
    x, k = cache
    dx = np.zeros_like(x)
    for n in range(dout.shape[0]):
        for c in range(dout.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    win = x[n, c, i * k:i * k + k, j * k:j * k + k]
                    a, b_ = np.unravel_index(np.argmax(win), win.shape)
                    dx[n, c, i * k + a, j * k + b_] += dout[n, c, i, j]
    return dx


# ---- timing ------------------------------------------------------------------------------------
def timed_blocks(fns, repeats, cycles=3):
    """{name: median seconds}. Each implementation runs in blocks of consecutive calls (the
    first call of a block is an untimed warm-up), and the blocks rotate `cycles` times.

    Blocks, not single calls in turn: right after a BLAS call or a PyTorch op, their idle
    worker threads spin for a while and slow whatever runs next (a PyTorch batch norm ran
    100x slower right after a numpy matmul here), which would charge one library's threads
    to the other.
    """
    times = {name: [] for name in fns}
    per_block = max(1, -(-repeats // cycles))
    for _ in range(cycles if repeats > 1 else 1):
        for name, fn in fns.items():
            fn()
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def report(title, results, scale=None):
    """Print one block: a row per implementation with its median and ratio to torch."""
    print(f"\n{title}")
    ref = results.get("torch")
    for name, t in results.items():
        shown = t * (scale or {}).get(name, 1.0)
        ratio = f"{shown / ref:8.2f}x torch" if ref else ""
        print(f"  {name:<12s} {shown * 1e3:10.3f} ms {ratio}")


def at_tensors(arrays, grad):
    return [at.Tensor(a, requires_grad=grad) for a in arrays]


def torch_tensors(arrays, grad):
    return [torch.tensor(a, requires_grad=grad) for a in arrays]


def at_case(op, arrays, fused_on, backward):
    """A closure running the autotensor op (fused or twin), with or without backward."""
    def run():
        ts = at_tensors(arrays, backward)
        with at.use_fused(fused_on):
            if not backward:
                with at.no_grad():
                    op(*ts)
                return
            out = op(*ts)
            out.backward(np.ones_like(out.data))
    return run


def torch_case(op, arrays, backward):
    def run():
        ts = torch_tensors(arrays, backward)
        if not backward:
            with torch.no_grad():
                op(*ts)
            return
        out = op(*ts)
        out.backward(torch.ones_like(out))
    return run


# ---- cases -------------------------------------------------------------------------------------
CONV = [((100, 3, 31, 31), (25, 3, 3, 3), 2, 1), ((50, 3, 32, 32), (32, 3, 7, 7), 1, 3),
        ((64, 64, 16, 16), (64, 64, 3, 3), 1, 1)]
POOL = [(100, 3, 32, 32), (50, 32, 32, 32)]
BN = [(100, 500), (50, 32, 32, 32)]


def bench_conv(dtype, repeats, naive_n, naive_reps, rng):
    for xs, ws, s, p in CONV:
        arrays = [rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype),
                  rng.standard_normal(ws[0]).astype(dtype)]
        op = lambda x, w, b, s=s, p=p: fused.conv2d(x, w, b, stride=s, pad=p)  # noqa: E731
        top = lambda x, w, b, s=s, p=p: torch.nn.functional.conv2d(  # noqa: E731
            x, w, b, stride=s, padding=p)
        xn = arrays[0][:naive_n]
        n_scale = xs[0] / xn.shape[0]
        for backward in (False, True):
            fns = {"fused": at_case(op, arrays, True, backward),
                   "composite": at_case(op, arrays, False, backward)}
            if torch is not None:
                fns["torch"] = torch_case(top, arrays, backward)
            res = timed_blocks(fns, repeats)
            if backward:
                fwd = conv_naive_forward(xn, arrays[1], arrays[2], s, p)
                naive = lambda fwd=fwd: conv_naive_backward(np.ones_like(fwd[0]), fwd[1])  # noqa
            else:
                naive = functools.partial(conv_naive_forward, xn, arrays[1], arrays[2], s, p)
            res.update(timed_blocks({"naive*": naive}, naive_reps))
            what = "forward" if not backward else "forward+backward (naive*: backward only)"
            report(f"conv x {xs} w {ws} stride {s} pad {p} {dtype.__name__}: {what}", res,
                   {"naive*": n_scale})
            if backward:
                fwd_only = timed_blocks({"fused": at_case(op, arrays, True, False)}, repeats)
                bwd = res["fused"] - fwd_only["fused"]
                print(f"  backward only: fused {bwd * 1e3:.3f} ms; naive*/fused "
                      f"{res['naive*'] * n_scale / max(bwd, 1e-9):.0f}x; composite/fused "
                      f"(fwd+bwd) {res['composite'] / res['fused']:.1f}x")


def bench_pool(dtype, repeats, naive_n, naive_reps, rng):
    for xs in POOL:
        arrays = [rng.standard_normal(xs).astype(dtype)]
        xn = arrays[0][:naive_n]
        for backward in (False, True):
            fns = {"fused": at_case(fused.max_pool2d, arrays, True, backward),
                   "composite": at_case(fused.max_pool2d, arrays, False, backward)}
            if torch is not None:
                fns["torch"] = torch_case(lambda x: torch.nn.functional.max_pool2d(x, 2),
                                          arrays, backward)
            res = timed_blocks(fns, repeats)
            fwd = pool_naive_forward(xn, 2)
            naive = (functools.partial(pool_naive_backward, np.ones_like(fwd[0]), fwd[1])
                     if backward else functools.partial(pool_naive_forward, xn, 2))
            res.update(timed_blocks({"naive*": naive}, naive_reps))
            what = "forward" if not backward else "forward+backward (naive*: backward only)"
            report(f"max pool 2x2 on {xs} {dtype.__name__}: {what}", res,
                   {"naive*": xs[0] / xn.shape[0]})


def bn_op(x, g, b, rm, rv):
    return fused.batch_norm(x, g, b, rm, rv, training=True)


def torch_bn_op(x, g, b, rm, rv):
    return torch.nn.functional.batch_norm(x, rm, rv, g, b, training=True, momentum=0.1)


def bench_bn(dtype, repeats, rng):
    for xs in BN:
        d = xs[1]
        arrays = [rng.standard_normal(xs).astype(dtype), np.ones(d, dtype), np.zeros(d, dtype)]
        rm, rv = np.zeros(d, dtype), np.ones(d, dtype)
        op = functools.partial(bn_op, rm=rm, rv=rv)
        for backward in (False, True):
            fns = {"fused": at_case(op, arrays, True, backward),
                   "composite": at_case(op, arrays, False, backward)}
            if torch is not None:
                tdt = getattr(torch, dtype.__name__)
                fns["torch"] = torch_case(functools.partial(
                    torch_bn_op, rm=torch.zeros(d, dtype=tdt), rv=torch.ones(d, dtype=tdt)),
                    arrays, backward)
            what = "forward" if not backward else "forward+backward"
            report(f"batch norm {xs} {dtype.__name__} (training): {what}",
                   timed_blocks(fns, repeats))


def bench_models(dtype, repeats, rng):
    if at_models is None:
        print("\nmodel steps: skipped: models not available (autotensor.nn.models missing)")
        return
    print("\nmodel steps: TODO")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repeats, for a smoke run")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--naive-n", type=int, default=None, help="samples timed by naive loops")
    ap.add_argument("--dtype", choices=["float32", "float64"], default=None)
    ap.add_argument("--only", choices=["conv", "pool", "bn", "models"], default=None)
    args = ap.parse_args()
    repeats = args.repeats or (3 if args.quick else 15)
    naive_n = args.naive_n or (1 if args.quick else 4)
    naive_reps = 1 if args.quick else 3
    from autotensor.fused import kernels
    threads = kernels.numba.get_num_threads() if kernels.numba else os.cpu_count()
    if torch is not None:
        torch.set_num_threads(threads)
    print(f"autotensor kernels: {kernels.BACKEND}; threads {threads}; torch "
          f"{torch.__version__ if torch else 'not installed'}; {time.strftime('%Y-%m-%d')}; "
          f"repeats {repeats} (medians)")
    rng = np.random.default_rng(0)
    dtypes = [np.dtype(args.dtype).type] if args.dtype else [np.float64, np.float32]
    for dtype in dtypes:
        if args.only in (None, "conv"):
            bench_conv(dtype, repeats, naive_n, naive_reps, rng)
        if args.only in (None, "pool"):
            bench_pool(dtype, repeats, naive_n, naive_reps, rng)
        if args.only in (None, "bn"):
            bench_bn(dtype, max(repeats, 5) * 4, rng)
        if args.only in (None, "models"):
            bench_models(dtype, repeats, rng)


if __name__ == "__main__":
    main()
