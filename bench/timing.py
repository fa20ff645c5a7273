"""Timing helpers shared by the bench/ scripts (public tools only: time.perf_counter).

- `timed_blocks` runs each implementation in blocks of consecutive calls, rotating the
  blocks, so a slow spell of a shared machine hits every implementation alike; quote medians.
- `run_worker` runs a script again as a worker process (for PyTorch): in one process the
  OpenMP runtimes of numba and PyTorch get merged (both are libgomp.so.1) and whichever
  loads first imposes its thread wait policy on the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def timed_blocks(fns, repeats, cycles=3):
    """{name: list of seconds}: blocks of consecutive calls, rotating `cycles` times.

    `repeats` is one count for every name or a {name: count} dict (fewer calls for slow ones).
    The first call of each block is an untimed warm-up. Calls are not interleaved one by one:
    right after a BLAS call or a PyTorch op their idle worker threads spin for ~0.1 s and
    slow whatever runs next. No pause between calls either (as in a training loop): after
    ~0.1 s idle, the first kernels ran on one core here.
    """
    counts = repeats if isinstance(repeats, dict) else dict.fromkeys(fns, repeats)
    times = {name: [] for name in fns}
    for _ in range(cycles if max(counts.values(), default=1) > 1 else 1):
        for name, fn in fns.items():
            fn()
            for _ in range(max(1, -(-counts[name] // cycles))):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times


def run_worker(script, args):
    """Run `python script --torch-worker *args`: its JSON stdout as a dict, or None when
    torch is not installed (other failures are printed)."""
    proc = subprocess.run([sys.executable, script, "--torch-worker", *map(str, args)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        if "No module named 'torch'" not in proc.stderr:
            print(f"PyTorch worker failed:\n{proc.stderr}", file=sys.stderr)
        return None
    return json.loads(proc.stdout)


def thread_count():
    """The threads autotensor's kernels use (numba's count), for PyTorch to match."""
    from autotensor.fused import kernels
    return kernels.numba.get_num_threads() if kernels.numba else os.cpu_count() or 1
