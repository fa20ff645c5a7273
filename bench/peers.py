"""autotensor against every peer engine: the same workloads, each library in its own process.

Workloads, in float64 and float32 (each engine writes the same math in its own idiom):
  chain   : 1,000 elementwise ops on a (4, 4) tensor, forward + backward; microseconds per op
  mlp     : one SGD step of an MLP 784-256-256-10 (relu), batch 64, softmax cross-entropy
  convnet : one SGD step of conv 7x7 (32 filters, pad 3) - relu - 2x2 max pool - affine 100 -
            relu - affine 10 - softmax cross-entropy, batch 50 of 3x32x32
  hvp     : Hessian-vector product of an MLP 784-256-10's loss (batch 64) w.r.t. its weights,
            PyTorch's signature `autograd.functional.hvp(func, inputs, v) -> (output, hvp)`
  memory  : peak resident memory of 10 convnet steps
Engines: autotensor, PyTorch (eager), JAX (eager, and with the whole step under jax.jit),
tinygrad (CPU, no TinyJit), MyGrad, HIPS autograd. A peer that is not installed is reported and
skipped (`pip install -e ".[bench]"`); one that cannot run a workload shows "n/a" and says why
(a workload whose first calls take over --limit seconds, too). The engines' own spellings of the
workloads' few calls live in bench/peer_engines.py. Results: docs/performance.md.

How it measures:
- The parent draws every weight and input once with numpy (float64; workers cast to the dtype)
  and runs one worker process per (engine, dtype), one after another, each with the same thread
  count: the BLAS/OpenMP/numba/tinygrad thread variables are set, and where the machine has more
  CPUs the worker is pinned to that many (XLA sizes its thread pool to the CPUs it may use).
- Before timing, a worker computes from the initial weights the loss and the norm of its
  gradient (hvp: the loss, v.Hv and |Hv|); the parent compares them with autotensor's (with
  PyTorch's where autotensor has no value) to 1e-6 relative in float64, 1e-3 in float32, and
  prints MISMATCH instead of a time where they differ.
- Timing inside each worker is bench/timing.py's: blocks of calls rotated across its workloads;
  medians. Every timed call ends with the loss as a Python float and the new weights computed
  (JAX dispatches asynchronously and tinygrad is lazy: both are waited for).
- Memory: right after imports and weight creation the worker reads its resident set size and
  resets the kernel's peak to it (Linux: /proc/self/clear_refs); after the steps, the peak
  (`getrusage` ru_maxrss) minus that baseline. Without the reset: peak minus the peak so far.
Usage: python bench/peers.py [--quick] [--repeats N] [--dtypes ...] [--engines ...] [--limit S]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from peer_engines import ENGINES, Unavailable
from timing import thread_count, timed_blocks

SIZES = {"chain": 1000, "mlp": 64, "convnet": 50, "hvp": 64, "memory": 10}
QUICK_SIZES = {"chain": 12, "mlp": 8, "convnet": 2, "hvp": 8, "memory": 2}
WORKLOADS = ("chain", "mlp", "convnet", "hvp")
EAGER_PEERS = ("pytorch", "tinygrad", "mygrad", "autograd")     # the eager engines


class _Overtime(BaseException):
    """Raised by SIGALRM; a BaseException, so that no library's `except Exception` eats it."""


def limited(fn, seconds):
    """fn(), or Unavailable once it has run `seconds` (tinygrad compiles the 1,000-op chain into
    one kernel for hours)."""
    def alarm(signum, frame):
        raise _Overtime
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    except _Overtime:
        raise Unavailable(f"its first calls ran past {seconds:.0f} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---- the workloads, written once over an engine's few differently-spelled calls ----------------
def chain(E, params, n):
    """n tiny elementwise ops: the cost of recording and replaying a tape of small nodes."""
    y = params[0]
    for i in range(n // 4):
        y = E.tanh(y * 1.001 + 0.01) - 0.5 if i % 2 else E.tanh((y - 0.5) * 0.999 + 0.5)
    return y.sum()


def mlp_loss(E, params, x, y):
    """Affine layers with relu between them, then softmax cross-entropy (mean over the batch)."""
    h = x
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i < len(params) - 2:
            h = E.relu(h)
    return E.cross_entropy(h, y)


def convnet_loss(E, params, x, y):
    """conv 7x7 pad 3 - relu - 2x2 max pool - affine - relu - affine - softmax cross-entropy."""
    wc, bc, w2, b2, w3, b3 = params
    h = E.flatten(E.pool(E.relu(E.conv(x, wc, bc))))
    h = E.relu(h @ w2 + b2)
    return E.cross_entropy(h @ w3 + b3, y)


def norm(arrays):
    return float(np.sqrt(sum(np.vdot(a, a) for a in arrays)))


def gradient_workload(E, loss, arrays, data, fresh):
    """(check, run) for a loss: check -> [loss, |gradient|]; run -> one timed call.

    fresh: every call differentiates new leaves from `arrays` (the chain); otherwise one SGD
    step on weights that persist from call to call."""
    value_and_grad = E.value_and_grad(loss)
    checked = E.jit(value_and_grad)

    def check():
        value, grads = checked([E.leaf(a) for a in arrays], *data)
        return [E.finish(value, grads), norm([E.numpy(g) for g in grads])]

    if fresh:
        return check, lambda: E.finish(*checked([E.leaf(a) for a in arrays], *data))

    def sgd_step(params, *data):
        value, grads = value_and_grad(params, *data)
        return value, E.sgd(params, grads)
    step, params = E.jit(sgd_step), [E.leaf(a) for a in arrays]

    def run():
        nonlocal params
        value, params = step(params, *data)
        return E.finish(value, params)
    return check, run


def hvp_workload(E, arrays, v, data):
    """(check, run) for the Hessian-vector product: check -> [loss, v.Hv, |Hv|]."""
    hvp = E.jit(E.hvp(mlp_loss))
    params, vs = [E.const(a) for a in arrays], [E.const(a) for a in v]

    def check():
        value, hv = hvp(params, vs, *data)
        loss, hv = E.finish(value, hv), [E.numpy(h) for h in hv]
        return [loss, sum(float(np.vdot(a, h)) for a, h in zip(v, hv)), norm(hv)]
    return check, lambda: E.finish(*hvp(params, vs, *data))


# ---- worker ----------------------------------------------------------------------------------
def rss_baseline():
    """KiB: resident memory now, with the kernel's peak reset to it; else the peak so far."""
    try:
        with open("/proc/self/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                            # 5: reset the peak resident set size
        return rss
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(args):
    E = ENGINES[args.worker]
    threads = int(os.environ["OMP_NUM_THREADS"])
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > threads:
        os.sched_setaffinity(0, cpus[:threads])
    result = {"load": os.getloadavg()[0]}
    try:
        result["version"] = E.load(args.dtype)
    except Unavailable as e:
        return {**result, "unavailable": str(e)}
    with np.load(args.data) as npz:
        d = {k: v.astype(args.dtype) if v.dtype.kind == "f" else v for k, v in npz.items()}
    mlp = [d[f"mlp{i}"] for i in range(6)]
    conv = [d[f"conv{i}"] for i in range(6)]
    hvp = [d[f"hvp{i}"] for i in range(4)]
    xy = (E.const(d["x"]), E.labels(d["y"]))
    conv_xy = (E.const(d["conv_x"]), E.labels(d["conv_y"]))
    builds = {      # the chain last: a first call cut off by `limited` can leave an engine stuck
        "mlp": lambda: gradient_workload(E, mlp_loss, mlp, xy, fresh=False),
        "convnet": lambda: gradient_workload(E, convnet_loss, conv, conv_xy, fresh=False),
        "hvp": lambda: hvp_workload(E, hvp, [d[f"v{i}"] for i in range(4)], xy),
        "chain": lambda: gradient_workload(E, lambda E, ps: chain(E, ps, args.chain),
                                           [d["chain_x"]], (), fresh=True),
    }
    try:         # first, before any other workload has run: its own peak is what we measure
        _, step = builds["convnet"]()
        baseline = rss_baseline()
        for _ in range(args.steps):
            step()
        result["peak_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    except Exception as e:      # noqa: BLE001 (a peer's failure is reported, not fatal)
        result["peak_error"] = f"{type(e).__name__}: {e}"
    checks, skipped, fns, probes = {}, {}, {}, {}
    for name, build in builds.items():
        try:
            check, fns[name] = build()
            checks[name] = limited(check, args.limit)
            t0 = time.perf_counter()
            limited(fns[name], args.limit)
            probes[name] = time.perf_counter() - t0
        except Unavailable as e:
            skipped[name] = f"n/a: {e}"
        except Exception as e:  # noqa: BLE001
            skipped[name] = f"error: {type(e).__name__}: {e}"
        if name in skipped:
            fns.pop(name, None)
    # slow workloads get fewer calls: about `budget` seconds in all, 3 to --repeats calls each
    share = args.budget / max(1, len(fns))
    repeats = {n: min(args.repeats, max(3, int(share / probes[n]))) if args.repeats > 1 else 1
               for n in fns}
    times = timed_blocks(fns, repeats) if fns else {}
    return {**result, "checks": checks, "skipped": skipped, "times": times}


# ---- parent ----------------------------------------------------------------------------------
def make_data(path, sizes):
    """Every weight and input, drawn once (float64) and saved for the workers."""
    rng = np.random.default_rng(0)

    def layers(shapes):
        out = []
        for shape in shapes:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            out += [rng.standard_normal(shape) * np.sqrt(2 / fan_in),
                    rng.standard_normal(shape[0] if len(shape) == 4 else shape[1]) * 0.1]
        return out
    arrays = {"chain_x": rng.random((4, 4)) + 0.5,
              "x": rng.standard_normal((sizes["mlp"], 784)),
              "y": rng.integers(0, 10, sizes["mlp"]),
              "conv_x": rng.standard_normal((sizes["convnet"], 3, 32, 32)),
              "conv_y": rng.integers(0, 10, sizes["convnet"])}
    named = {"mlp": layers([(784, 256), (256, 256), (256, 10)]),
             "conv": layers([(32, 3, 7, 7), (32 * 16 * 16, 100), (100, 10)]),
             "hvp": layers([(784, 256), (256, 10)])}
    named["v"] = [rng.standard_normal(a.shape) for a in named["hvp"]]
    for prefix, group in named.items():
        arrays.update({f"{prefix}{i}": a for i, a in enumerate(group)})
    np.savez(path, **arrays)


def run_worker(label, dtype, args, data, out_dir):
    """The worker's result dict; {'error': ...} when it crashed or ran out of time."""
    E = ENGINES[label]
    env = {**os.environ, **E.env, **{v: str(args.threads) for v in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
        "NUM_CPU_THREADS")}}
    if args.threads == 1:       # XLA's one-thread switch; otherwise its pool follows the CPUs
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    out = os.path.join(out_dir, f"{label}-{dtype}.json")
    cmd = [sys.executable, __file__, "--worker", label, "--dtype", dtype, "--data", data,
           "--out", out, "--repeats", str(args.repeats), "--budget", str(args.budget),
           "--limit", str(args.limit),
           "--chain", str(args.sizes["chain"]), "--steps", str(args.sizes["memory"])]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=args.worker_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {args.worker_timeout} s"}
    finally:
        print(f"  ({label} {dtype}: {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if proc.returncode != 0 or not os.path.exists(out):
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    with open(out) as f:
        return json.load(f)


def compare(results, dtype):
    """{label: {workload: None | 'MISMATCH: ...'}} against autotensor's checks (PyTorch's where
    autotensor has none, else the first engine's that has one)."""
    tol = 1e-6 if dtype == "float64" else 1e-3
    verdicts = {}
    for label, r in results.items():
        verdicts[label] = {}
        for w, got in r.get("checks", {}).items():
            ref_label = next(lb for lb in ("autotensor", "pytorch", *results)
                             if w in results.get(lb, {}).get("checks", {}))
            ref = results[ref_label]["checks"][w]
            rel = max(abs(a - b) / max(abs(a), abs(b), 1e-300) for a, b in zip(got, ref))
            verdicts[label][w] = None if rel <= tol else (
                f"MISMATCH: {label} {dtype} {w}: {fmt_list(got)} against {ref_label}'s "
                f"{fmt_list(ref)} (relative difference {rel:.1e} > {tol:g})")
    return verdicts


def fmt_list(values):
    return "[" + ", ".join(f"{v:.9g}" for v in values) + "]"


def cell(r, verdict, w, scale):
    """One table cell: the median, or why there is none."""
    if "error" in r:
        return "error"
    if "unavailable" in r or r.get("skipped", {}).get(w, "").startswith("n/a"):
        return "n/a"
    if w in r.get("skipped", {}):
        return "error"
    if verdict.get(w):
        return "MISMATCH"
    return f"{statistics.median(r['times'][w]) * scale:.3g}" if w in r.get("times", {}) else "-"


def report(dtype, results, verdicts, sizes):
    labels = list(results)
    units = {"chain": ("us/op", 1e6 / sizes["chain"]), "mlp": ("ms/step", 1e3),
             "convnet": ("ms/step", 1e3), "hvp": ("ms", 1e3)}
    head = [f"{dtype} (median)"] + labels
    rows = [[f"{w} ({unit})"] + [cell(results[lb], verdicts[lb], w, scale) for lb in labels]
            for w, (unit, scale) in units.items()]
    peak = []
    for lb in labels:
        r = results[lb]
        broken = "error" in r or "unavailable" in r or verdicts[lb].get("convnet")
        peak.append("n/a" if "unavailable" in r else "error" if broken or "peak_mib" not in r
                    else f"{r['peak_mib']:.0f}")
    rows.append([f"peak MiB, {sizes['memory']} convnet steps"] + peak)
    widths = [max(len(row[i]) for row in [head] + rows) for i in range(len(head))]
    print()
    for row in [head, ["-" * w for w in widths]] + rows:
        print("| " + " | ".join(c.rjust(w) if i else c.ljust(w)
                                for i, (c, w) in enumerate(zip(row, widths))) + " |")
    summary(dtype, results, verdicts, units)


def summary(dtype, results, verdicts, units):
    """autotensor against the fastest eager peer (the issue's target) and against jax-jit."""
    def median(label, w):
        r = results.get(label, {})
        if w in r.get("times", {}) and w in r.get("checks", {}) and not verdicts[label].get(w):
            return statistics.median(r["times"][w])
    for w in units:
        ours = median("autotensor", w)
        if ours is None:
            continue
        eager = [(t, lb) for lb in EAGER_PEERS if (t := median(lb, w)) is not None]
        line = f"  {dtype} {w}: "
        if eager:
            t, lb = min(eager)
            line += f"autotensor / fastest eager ({lb}) {ours / t:.3g} " + \
                ("(fastest)" if ours <= t else "(not fastest)")
        if (jit := median("jax-jit", w)) is not None:
            line += f"; autotensor / jax-jit {ours / jit:.3g}"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repeat, small sizes: a smoke run")
    ap.add_argument("--repeats", type=int, default=None, help="most timed calls per workload")
    ap.add_argument("--budget", type=float, default=40.0, help="seconds of timing per worker")
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    ap.add_argument("--engines", nargs="+", choices=list(ENGINES), default=list(ENGINES))
    ap.add_argument("--threads", type=int, default=None, help="threads for every engine")
    ap.add_argument("--limit", type=float, default=60.0,
                    help="seconds for a workload's first calls; past it the cell says n/a")
    ap.add_argument("--worker-timeout", type=float, default=1800.0)
    for hidden, kind in (("--worker", str), ("--dtype", str), ("--data", str), ("--out", str),
                         ("--chain", int), ("--steps", int)):
        ap.add_argument(hidden, type=kind, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        with open(args.out, "w") as f:
            json.dump(worker(args), f)
        return 0
    args.repeats = args.repeats or (1 if args.quick else 15)
    args.sizes = QUICK_SIZES if args.quick else SIZES
    args.threads = min(args.threads or thread_count(), len(os.sched_getaffinity(0)))
    installed = {lb: importlib.util.find_spec(ENGINES[lb].module) is not None
                 for lb in args.engines}
    if not any(ok for lb, ok in installed.items() if lb != "autotensor"):
        print("No peer engine installed (or selected): nothing to compare "
              "(pip install -e \".[bench]\").")
        return 0
    print(f"autotensor against its peers: {time.strftime('%Y-%m-%d %H:%M')}, {args.threads} "
          f"threads each, load average {os.getloadavg()[0]:.2f} at start; "
          f"up to {args.repeats} calls per workload (medians)")
    mismatches = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.npz")
        make_data(data, args.sizes)
        for dtype in args.dtypes:
            results = {lb: run_worker(lb, dtype, args, data, tmp) if ok else
                       {"unavailable": "not installed"} for lb, ok in installed.items()}
            verdicts = compare(results, dtype)
            report(dtype, results, verdicts, args.sizes)
            for lb, r in results.items():
                print(f"  {lb}: " + status(r, verdicts[lb]))
                mismatches += [v for v in verdicts[lb].values() if v]
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    for m in mismatches:
        print(f"LOSS {m}")
    return 1 if mismatches else 0


def status(r, verdict):
    """One line per engine and dtype: version, the loss check, and why a cell is empty."""
    if "error" in r:
        return f"ERROR {r['error']}"
    if "unavailable" in r:
        return f"n/a ({r['unavailable']})"
    passed = [w for w in WORKLOADS if w in r["checks"] and not verdict.get(w)]
    text = f"{r['version']}, load {r['load']:.2f}: loss check passed ({', '.join(passed)})" \
        if passed else f"{r['version']}: no loss check passed"
    notes = [f"{w} {why}" for w, why in r["skipped"].items()]
    notes += [f"memory error: {r['peak_error']}"] if "peak_error" in r else []
    return text + "".join(f"; {n}" for n in notes)


if __name__ == "__main__":
    sys.exit(main())
