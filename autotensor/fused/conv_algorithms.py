"""How Conv2dFn spreads a batch over threads: the per-shape rule, in one place.

The rule (measured in docs/performance.md, "Convolution"): a convolution of at least
SPLIT_MIN_MACS multiply-adds per GEMM pass (N*F*K*P) is cut into T slices of the batch,
T = numpy's BLAS thread count (at most N), and each slice runs its whole pipeline
(im2col, GEMMs, col2im) on a thread of its own with single-threaded BLAS and numba kernels.
Smaller ones run in one piece on the caller's thread, BLAS threading as it is. The threads
and the hand-off are autotensor/blas_threads.py's, which splits large matmuls the same way.

Why: numpy's batched matmul makes one BLAS call per sample, and OpenBLAS threads each
(64 x 577) @ (577 x 256) call separately, with a thread barrier and a spin-wait per call;
2 threads ran these convolutions 1.5-3x slower than twice the 1-thread speed, and 10x
slower when the cores were shared. Independent slices need no barrier, and a slice's
columns are the size its own GEMMs read back while they are still in cache.
"""

from __future__ import annotations

from .. import blas_threads
from . import kernels

SPLIT_MIN_MACS = blas_threads.SPLIT_MIN_MACS    # ~34 M multiply-adds: ~1 ms of one core


def batch_slices(N, F, K, P):
    """The slices of the batch to run in parallel: [slice(0, N)] when the rule says one piece."""
    T = min(N, blas_threads.count()) if blas_threads.available() else 1
    if T < 2 or N * F * K * P < SPLIT_MIN_MACS:
        return [slice(0, N)]
    return blas_threads.split(N, T)


def run(part, slices):
    """part(s) for every slice s (blas_threads.run); with several slices, each one's numba
    kernels run on one thread, as its BLAS does (numba's count is per thread)."""
    if len(slices) == 1 or kernels.numba is None:
        blas_threads.run(part, slices)
    else:
        blas_threads.run(lambda s: _one_numba_thread(part, s), slices)


def _one_numba_thread(fn, *args):
    """fn(*args) with this thread's numba kernels on one thread."""
    before = kernels.numba.get_num_threads()
    kernels.numba.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        kernels.numba.set_num_threads(before)
