"""How Conv2dFn spreads a batch over threads: the per-shape rule, in one place.

The rule (measured in docs/performance.md, "Convolution"): a convolution of at least
SPLIT_MIN_MACS multiply-adds per GEMM pass (N*F*K*P) is cut into T slices of the batch,
T = numpy's BLAS thread count (at most N), and each slice runs its whole pipeline
(im2col, GEMMs, col2im) on a thread of its own with single-threaded BLAS and numba kernels.
Smaller ones run in one piece on the caller's thread, BLAS threading as it is.

Why: numpy's batched matmul makes one BLAS call per sample, and OpenBLAS threads each
(64 x 577) @ (577 x 256) call separately, with a thread barrier and a spin-wait per call;
2 threads ran these convolutions 1.5-3x slower than twice the 1-thread speed, and 10x
slower when the cores were shared. Independent slices need no barrier, and a slice's
columns are the size its own GEMMs read back while they are still in cache.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from . import blas_threads, kernels

SPLIT_MIN_MACS = 1 << 25      # ~34 M multiply-adds: about 1 ms of one core's GEMM time

_pools = {}
_pools_lock = threading.Lock()


def _after_fork():
    """A forked child has none of the parent's worker threads: its pools start afresh."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def batch_slices(N, F, K, P):
    """The slices of the batch to run in parallel: [slice(0, N)] when the rule says one piece."""
    T = min(N, blas_threads.count()) if blas_threads.available() else 1
    if T < 2 or N * F * K * P < SPLIT_MIN_MACS:
        return [slice(0, N)]
    bounds = [N * i // T for i in range(T + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def run(part, slices):
    """part(s) for every slice s: one slice runs here; several run on worker threads (the
    caller's thread takes the first) with one BLAS and one numba thread each."""
    if len(slices) == 1:
        part(slices[0])
        return
    pool = _pool(len(slices) - 1)
    with blas_threads.single_threaded():
        futures = [pool.submit(part, s) for s in slices[1:]]
        try:
            _one_numba_thread(part, slices[0])
        finally:
            wait(futures)            # no slice may outlive the single-threaded BLAS block
    for f in futures:
        f.result()


def _one_numba_thread(fn, *args):
    """fn(*args) with this thread's numba kernels on one thread (numba's count is per thread)."""
    if kernels.numba is None:
        return fn(*args)
    before = kernels.numba.get_num_threads()
    kernels.numba.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        kernels.numba.set_num_threads(before)


def _pool(workers):
    with _pools_lock:
        if workers not in _pools:
            init = (lambda: kernels.numba.set_num_threads(1)) if kernels.numba else None
            _pools[workers] = ThreadPoolExecutor(workers, "autotensor-conv", initializer=init)
        return _pools[workers]
