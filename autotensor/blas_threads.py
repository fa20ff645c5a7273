"""BLAS and threads: the engine's large matrix products run on autotensor's own threads.

Why: after each multithreaded GEMM, OpenBLAS's idle worker threads spin (calling sched_yield)
for a while before they sleep. Two things go wrong around them. The numba kernels that follow
get one core instead of two (the "spinning-thread tax", docs/performance.md). And when another
process wants the cores, even one at nice 19, each yield hands it a time slice, so the next
GEMM waits milliseconds for its partner thread. Blocks on our own threads avoid both: our
workers sleep on a lock until the kernel wakes them, and their GEMMs run with OpenBLAS on one
thread. Measured 2026-12-03: the conv-net step of bench/peers.py (its 8192 x 100 affine
layer's three GEMMs now split) ran 1.2-1.6x faster on a quiet machine. With a niced test suite
running, the MLP step of bench/ops_overhead.py took 11 ms on OpenBLAS's threads and 4.2-4.5
ms with its GEMMs split at a 4 M threshold (PyTorch: 4.5), but that threshold cost it on a
quiet machine, below.

The rule, in one place (`matmul`), by the product's multiply-adds:
- below SPLIT_MIN_MACS: numpy's matmul as it is. A hand-off to a worker and back costs
  ~30 us here (a lock each way, the wake-ups and the GIL), so splitting an MLP's 4-13 M
  multiply-add GEMMs made its step 1.3-2x slower on a quiet machine;
- from there on: one block per BLAS thread numpy has (rows of the output, its columns when it
  is wider than tall, or the first axis of a stack), each on a thread of its own (`run`).
The convolutions cut their batch by the same threshold (fused/conv_algorithms.py).

numpy has no API for its BLAS's threads, so the library's own setter is called through
ctypes (what threadpoolctl does, for the one library numpy's wheels ship). Where numpy uses
another BLAS, or the library is not found, `available()` is False, nothing is changed and
every product runs as numpy runs it.

NOTE: OpenBLAS's thread count is process-wide (so is its `_local` setter, in the pthreads
builds numpy ships): while `single_threaded()` holds it at 1, GEMMs in other Python threads
also run on one thread. A lock keeps two holders from restoring each other's values.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import math
import os
import threading

import numpy as np

from . import validate

# (getter, setter) name pairs: numpy's own wheels first (scipy-openblas, 64-bit ints), then
# a plain OpenBLAS build.
_NAMES = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
          ("openblas_get_num_threads", "openblas_set_num_threads")]


def _find():
    """(get, set) of numpy's OpenBLAS, or None."""
    root = os.path.dirname(os.path.abspath(np.__file__))
    paths = sorted(glob.glob(os.path.join(root, os.pardir, "numpy.libs", "*openblas*")) +
                   glob.glob(os.path.join(root, ".dylibs", "*openblas*")))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)        # already loaded by numpy: the same library instance
        except OSError:
            continue
        for get, put in _NAMES:
            if hasattr(lib, get) and hasattr(lib, put):
                getter, setter = getattr(lib, get), getattr(lib, put)
                getter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                return getter, setter
    return None


SPLIT_MIN_MACS = 1 << 25        # ~34 M multiply-adds: ~1 ms of one core's GEMM time

_FUNCS = _find()
_lock = threading.Lock()        # held while the BLAS count is lowered (single_threaded)
_workers = []                   # _Worker threads, started on first need
_workers_lock = threading.Lock()  # held by the one `run` that uses them


def _after_fork():
    """A forked child has none of the parent's threads: fresh locks, workers started anew."""
    global _lock, _workers_lock
    _lock = threading.Lock()        # a fork while another thread held it must not deadlock
    _workers_lock = threading.Lock()
    _workers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def available():
    """True when numpy's BLAS threads can be set."""
    return _FUNCS is not None


def count():
    """numpy's BLAS thread count (1 when it cannot be read)."""
    return max(1, _FUNCS[0]()) if _FUNCS else 1


@contextlib.contextmanager
def single_threaded():
    """Run the block with numpy's BLAS on one thread; the previous count is restored after."""
    if _FUNCS is None:
        yield
        return
    get, put = _FUNCS
    with _lock:
        before = get()
        put(1)
        try:
            yield
        finally:
            put(before)


def set_num_threads(num):
    """PyTorch's `torch.set_num_threads`: how many threads autotensor's CPU work uses. Sets
    numpy's OpenBLAS (process-wide) and numba's kernels in the calling thread (numba's count
    is per thread; at most its NUMBA_NUM_THREADS). Conv batch slices and matmul blocks follow
    the BLAS count. 1 keeps autotensor on one core: the remedy when other processes load
    the machine (docs/performance.md, "BLAS threads")."""
    num = validate.size("set_num_threads", "num", num)
    if _FUNCS is not None:
        with _lock:
            _FUNCS[1](num)
    # at call time: autotensor.fused imports modules that import this one
    from .fused import kernels
    if kernels.numba is not None:
        kernels.numba.set_num_threads(min(num, kernels.numba.config.NUMBA_NUM_THREADS))


def get_num_threads():
    """PyTorch's `torch.get_num_threads`: numpy's BLAS thread count, or numba's in this thread
    where numpy's BLAS cannot be read."""
    if _FUNCS is not None:
        return count()
    from .fused import kernels
    return kernels.numba.get_num_threads() if kernels.numba is not None else 1


def run(part, slices):
    """part(s) for every slice s: one slice runs here as it is; several run with OpenBLAS on
    one thread, on worker threads, the caller's thread taking the first. Raises what a slice
    raised, after every slice has finished. A part must not call `run` or `single_threaded`
    itself: it would wait for the lock its caller holds."""
    if len(slices) == 1:
        part(slices[0])
        return
    with _workers_lock, single_threaded():
        while len(_workers) < len(slices) - 1:
            _workers.append(_Worker())
        started = []
        try:
            for w, s in zip(_workers, slices[1:]):
                w.start(part, s)
                started.append(w)
            part(slices[0])
        finally:
            errors = [w.join() for w in started]     # no slice outlives the block
    for e in errors:
        if e is not None:
            raise e


class _Worker:
    """A thread that runs one task at a time: `start(fn, arg)`, then `join()` -> its error.

    NOTE: two bare locks are the hand-off (~30 us there and back here, against ~50 for a
    ThreadPoolExecutor's future and condition variable): the thread sleeps in the kernel
    until `start` releases `_go`, and the caller sleeps on `_done`; nothing spins.
    """

    def __init__(self):
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task = self._error = None
        threading.Thread(target=self._loop, name="autotensor-blas", daemon=True).start()

    def _loop(self):
        while True:
            self._go.acquire()
            try:
                self._task[0](self._task[1])
            except BaseException as e:      # handed to the caller, raised there
                self._error = e
            # NOTE: nothing of the task may stay referenced while the thread waits: a part
            # holds views of the conv's pooled columns, which are reused only once unviewed.
            self._task = None
            self._done.release()

    def start(self, fn, arg):
        self._task = (fn, arg)
        self._go.release()

    def join(self):
        self._done.acquire()
        error, self._error = self._error, None
        return error


def split(n, parts):
    """range(n) as `parts` slices of near-equal length (fewer when n is smaller)."""
    parts = max(1, min(n, parts))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def matmul(a, b):
    """np.matmul(a, b) for arrays, run as the module's rule says (same values, up to the
    summation order of a block)."""
    a = a if a.__class__ is np.ndarray else np.asarray(a)
    b = b if b.__class__ is np.ndarray else np.asarray(b)
    if _macs(a, b) < SPLIT_MIN_MACS or a.dtype != b.dtype or a.dtype.kind != "f":
        return np.matmul(a, b)
    threads = count()                # a ctypes call: only for the products worth splitting
    if threads < 2:
        return np.matmul(a, b)
    if a.ndim == 2 and b.ndim == 2:
        out = np.empty((a.shape[0], b.shape[1]), a.dtype)
        if a.shape[0] >= b.shape[1]:
            def part(s):
                np.matmul(a[s], b, out=out[s])
            run(part, split(a.shape[0], threads))
        else:
            def part(s):
                np.matmul(a, b[:, s], out=out[:, s])
            run(part, split(b.shape[1], threads))
        return out
    if a.ndim == b.ndim and a.ndim > 2 and a.shape[0] == b.shape[0]:
        out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) +
                       (a.shape[-2], b.shape[-1]), a.dtype)

        def part(s):
            np.matmul(a[s], b[s], out=out[s])
        run(part, split(a.shape[0], threads))
        return out
    return np.matmul(a, b)          # other layouts (1-d operands, broadcast stacks): as numpy


def _macs(a, b):
    """Multiply-adds of np.matmul(a, b) (numpy checks the shapes when it runs)."""
    if a.ndim == 0 or b.ndim == 0:
        return 0
    k = a.shape[-1]
    m = a.shape[-2] if a.ndim > 1 else 1
    n = b.shape[-1] if b.ndim > 1 else 1
    batch = 1
    if a.ndim > 2 or b.ndim > 2:
        try:
            batch = math.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        except ValueError:          # numpy's matmul raises its own error for these
            return 0
    return batch * m * k * n
