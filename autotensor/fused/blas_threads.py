"""The thread count of the OpenBLAS that numpy loaded, for code that runs its own threads.

numpy has no API for its BLAS's threads, so the library's own setter is called through
ctypes (what threadpoolctl does, for the one library numpy's wheels ship). Where numpy uses
another BLAS, or the library is not found, `available()` is False and nothing is changed.

NOTE: OpenBLAS's thread count is process-wide (so is its `_local` setter, in the pthreads
builds numpy ships): while `single_threaded()` holds it at 1, GEMMs in other Python threads
also run on one thread. A lock keeps two holders from restoring each other's values.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading

import numpy as np

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


_FUNCS = _find()
_lock = threading.Lock()


def _after_fork():
    global _lock
    _lock = threading.Lock()        # a fork while another thread held it must not deadlock


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
