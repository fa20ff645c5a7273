"""Grouped and depthwise convolution speed: autotensor fused (and its twin) vs PyTorch CPU.

Times forward + backward (fresh input tensors per call, upstream gradient of ones) of
fused.conv2d with groups, in float32 and float64, and prints medians (ms) and the ratio to
PyTorch (lower is better). PyTorch runs in a worker process with autotensor's thread count,
as in bench/layers.py (bench/timing.py: blocks of calls rotated, medians). A groups=1 case of
the same size is timed too: the plain conv, the reference for what grouping saves.

Usage: python bench/conv_groups.py [--repeats N] [--dtypes float32 float64] [--no-twin]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from timing import run_worker, thread_count, timed_blocks

# name: x, w, groups, padding
CASES = {
    "depthwise": ((32, 64, 32, 32), (64, 1, 3, 3), 64, 1),
    "groups=2": ((32, 64, 32, 32), (64, 32, 3, 3), 2, 1),
    "groups=1": ((32, 64, 32, 32), (64, 64, 3, 3), 1, 1),
}


def case_arrays(spec, dtype):
    rng = np.random.default_rng(0)
    xs, ws = spec[:2]
    return [rng.standard_normal(s).astype(dtype) for s in (xs, ws, (ws[0],))]


def torch_worker(args):
    import torch
    torch.set_num_threads(args.threads)
    tf = torch.nn.functional
    result = {"version": torch.__version__}
    for name, spec in CASES.items():
        for dt in args.dtypes:
            arrays = case_arrays(spec, np.dtype(dt))

            def run(arrays=arrays, spec=spec):
                ts = [torch.from_numpy(a).requires_grad_(True) for a in arrays]
                out = tf.conv2d(*ts, padding=spec[3], groups=spec[2])
                out.backward(torch.ones_like(out))
            result[f"{name} {dt}"] = timed_blocks({"t": run}, args.repeats)["t"]
    print(json.dumps(result))


def at_fns(spec, arrays, twin):
    import autotensor as at
    from autotensor import fused

    def make(on):
        def run():
            ts = [at.Tensor(a, requires_grad=True) for a in arrays]
            with at.use_fused(on):
                out = fused.conv2d(*ts, padding=spec[3], groups=spec[2])
                out.backward(np.ones_like(out.data))
        return run
    return {"fused": make(True), **({"composite": make(False)} if twin else {})}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per implementation")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--no-twin", action="store_true", help="skip the composite twin")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        return torch_worker(args)
    args.threads = thread_count()
    extra = ["--threads", args.threads, "--repeats", args.repeats, "--dtypes", *args.dtypes]
    print(f"threads {args.threads}; {time.strftime('%Y-%m-%d %H:%M')}; repeats {args.repeats} "
          "(medians, ms, fwd+bwd)")
    torch_runs = [run_worker(__file__, extra)]
    results = {}
    for name, spec in CASES.items():
        for dt in args.dtypes:
            arrays = case_arrays(spec, np.dtype(dt))
            times = timed_blocks(at_fns(spec, arrays, not args.no_twin), args.repeats)
            results[f"{name} {dt}"] = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    torch_runs.append(run_worker(__file__, extra))
    for key, rows in results.items():
        torch_ms = (statistics.median(torch_runs[0][key] + torch_runs[1][key]) * 1e3
                    if all(torch_runs) else None)
        cells = [f"{k} {ms:9.2f}" + (f" ({ms / torch_ms:5.2f}x)" if torch_ms else "")
                 for k, ms in rows.items()]
        torch_cell = f"torch {torch_ms:8.2f}" if torch_ms else "no torch"
        print(f"{key:<20s} " + "  ".join(cells) + f"  {torch_cell}")


if __name__ == "__main__":
    main()
