"""Pure array kernels behind the fused ops: numpy versions and numba versions, same signatures.

No autograd here: ndarrays in, ndarrays out. Every kernel exists twice, `numpy_<name>` (always
importable) and `numba_<name>` (when numba imports), and the public name is bound to one of
them in ONE place, `_select` at the bottom: numba unless `AUTOTENSOR_NUMBA=0` (or numba is
missing). Tests run both sets directly.

Layouts: conv columns are (N, C*HH*WW, Ho*Wo), i.e. a (N, C, HH, WW, Ho, Wo) block per
sample; max-pool argmax indices are int32 offsets i*kw + j inside each window.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading

import numpy as np

# ---- reusable buffers --------------------------------------------------------------------------
# Fresh arrays above glibc's mmap threshold (32 MB at most) page-fault on first touch, ~4 GB/s
# here: slower than the kernels that fill them. Conv columns are that large, so they come from
# a small pool of base arrays, each handed out again once no view of it is alive.
_POOL_SIZE = 8
_pool = []
_pool_lock = threading.Lock()


def pooled_empty(shape, dtype):
    """An uninitialised C-contiguous array, backed by pooled memory when one is free.

    Safe to save for backward or to hold indefinitely: a base array is reused only when
    nothing but the pool references it, so a live view can never be overwritten.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    with _pool_lock:
        for base in _pool:
            # NOTE: refcount 3 = the pool list + the loop variable + getrefcount's argument:
            # no view of `base` exists anywhere. (A CPython refcount; views hold their base.)
            if base.size == size and base.dtype == dtype and sys.getrefcount(base) == 3:
                return base.reshape(shape)
        if len(_pool) >= _POOL_SIZE:          # evict a free base (oldest first), if any
            free = [i for i, b in enumerate(_pool) if sys.getrefcount(b) == 3]
            if not free:
                return np.empty(shape, dtype=dtype)
            del _pool[free[0]]
        base = np.empty(size, dtype=dtype)
        _pool.append(base)
        return base.reshape(shape)


def clear_pool():
    """Drop the pooled base arrays (views still alive keep their own memory)."""
    with _pool_lock:
        _pool.clear()


# ---- numpy kernels -----------------------------------------------------------------------------
def numpy_im2col(x, HH, WW, stride, pad, Ho, Wo, out):
    """out (N, C*HH*WW, Ho*Wo) <- out[n, (c, i, j), (ho, wo)] = xpad[n, c, sh*ho+i, sw*wo+j]."""
    (sh, sw), (ph, pw) = stride, pad
    N, C = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    o6 = out.reshape(N, C, HH, WW, Ho, Wo)
    for i in range(HH):              # a loop over kernel offsets: each step is one strided copy
        for j in range(WW):
            o6[:, :, i, j] = xp[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
    return out


def numpy_col2im(cols, C, H, W, HH, WW, stride, pad, Ho, Wo):
    """The adjoint of im2col: dx (N, C, H, W) summing every column entry back to its pixel."""
    (sh, sw), (ph, pw) = stride, pad
    N = cols.shape[0]
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    c6 = cols.reshape(N, C, HH, WW, Ho, Wo)
    for i in range(HH):
        for j in range(WW):
            dxp[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += c6[:, :, i, j]
    return dxp[:, :, ph:ph + H, pw:pw + W]


def numpy_maxpool_forward(x, kh, kw, sh, sw):
    """(out, arg): window maxima (N, C, Ho, Wo) and the int32 offset i*kw + j of each maximum.

    NOTE: ties go to the first maximum in row-major order inside the window (np.argmax), and
    a NaN counts as the maximum, as in np.max.
    """
    N, C, H, W = x.shape
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    if kh == sh and kw == sw:       # windows tile the (cropped) input: a reshape, no gather
        xr = x[:, :, :Ho * kh, :Wo * kw].reshape(N, C, Ho, kh, Wo, kw)
        win = xr.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, kh * kw)
    else:                           # overlapping or gapped windows: a strided window view
        view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
        win = view[:, :, ::sh, ::sw][:, :, :Ho, :Wo].reshape(N, C, Ho, Wo, kh * kw)
    arg = np.argmax(win, axis=-1).astype(np.int32)
    out = np.take_along_axis(win, arg[..., None].astype(np.intp), axis=-1)[..., 0]
    return out, arg


def numpy_maxpool_backward(g, arg, H, W, kh, kw, sh, sw):
    """dx (N, C, H, W): each window's upstream gradient added at its maximum."""
    N, C, Ho, Wo = g.shape
    dx = np.zeros((N, C, H, W), dtype=g.dtype)
    if kh == sh and kw == sw:       # windows do not overlap: scatter into a tiled view
        win = np.zeros((N, C, Ho, Wo, kh * kw), dtype=g.dtype)
        np.put_along_axis(win, arg[..., None].astype(np.intp), g[..., None], axis=-1)
        dx[:, :, :Ho * kh, :Wo * kw] = win.reshape(N, C, Ho, Wo, kh, kw).transpose(
            0, 1, 2, 4, 3, 5).reshape(N, C, Ho * kh, Wo * kw)
        return dx
    for i in range(kh):              # overlapping windows: one masked strided add per offset
        for j in range(kw):
            dx[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += g * (
                arg == i * kw + j)
    return dx


NUMPY_KERNELS = {"im2col": numpy_im2col, "col2im": numpy_col2im,
                 "maxpool_forward": numpy_maxpool_forward,
                 "maxpool_backward": numpy_maxpool_backward}


# ---- numba kernels ------------------------------------------------------------------------------
def _import_numba():
    """numba, or None. Caches compiled kernels on disk (cache=True): next to this file when
    that is writable, else in a per-user temp dir (NUMBA_CACHE_DIR, unless the user set one)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if "NUMBA_CACHE_DIR" not in os.environ and not os.access(here, os.W_OK):
        user = os.getuid() if hasattr(os, "getuid") else "user"
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(),
                                                     f"autotensor-numba-{user}")
    try:
        import numba
    except ImportError:
        return None
    if numba.config.CACHE_DIR == "" and "NUMBA_CACHE_DIR" in os.environ:
        numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]      # numba imported earlier
    if "NUMBA_THREADING_LAYER" not in os.environ:
        # NOTE: the 'workqueue' layer's workers sleep between kernels; OpenMP's spin for a
        # while after each kernel and steal the cores BLAS needs for the next GEMM.
        numba.config.THREADING_LAYER = "workqueue"
    return numba


numba = _import_numba()
NUMBA_KERNELS = None

if numba is not None:
    _jit = numba.njit(cache=True, nogil=True, parallel=True)
    prange = numba.prange

    @_jit
    def _im2col_planes(x, sh, sw, ph, pw, out):
        N, C, H, W = x.shape
        _, _, HH, WW, Ho, Wo = out.shape
        for nc in prange(N * C):
            n, c = nc // C, nc % C
            for i in range(HH):
                for j in range(WW):
                    lo = min(Wo, max(0, (pw - j + sw - 1) // sw))    # first wo inside W
                    hi = max(lo, min(Wo, (W + pw - j - 1) // sw + 1))  # one past the last
                    for ho in range(Ho):
                        h = ho * sh + i - ph
                        if h < 0 or h >= H:
                            for wo in range(Wo):
                                out[n, c, i, j, ho, wo] = 0
                            continue
                        for wo in range(lo):
                            out[n, c, i, j, ho, wo] = 0
                        for wo in range(lo, hi):
                            out[n, c, i, j, ho, wo] = x[n, c, h, wo * sw + j - pw]
                        for wo in range(hi, Wo):
                            out[n, c, i, j, ho, wo] = 0

    @_jit
    def _col2im_planes(cols, sh, sw, ph, pw, dx):
        N, C, H, W = dx.shape
        _, _, HH, WW, Ho, Wo = cols.shape
        for nc in prange(N * C):
            n, c = nc // C, nc % C
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = 0
            for i in range(HH):
                for j in range(WW):
                    lo = min(Wo, max(0, (pw - j + sw - 1) // sw))
                    hi = max(lo, min(Wo, (W + pw - j - 1) // sw + 1))
                    for ho in range(Ho):
                        h = ho * sh + i - ph
                        if 0 <= h < H:
                            for wo in range(lo, hi):
                                dx[n, c, h, wo * sw + j - pw] += cols[n, c, i, j, ho, wo]

    @_jit
    def _maxpool_forward_planes(x, kh, kw, sh, sw, out, arg):
        N, C, Ho, Wo = out.shape
        for nc in prange(N * C):
            n, c = nc // C, nc % C
            for ho in range(Ho):
                for wo in range(Wo):
                    best = x[n, c, ho * sh, wo * sw]
                    k = 0
                    for i in range(kh):
                        for j in range(kw):
                            v = x[n, c, ho * sh + i, wo * sw + j]
                            # NOTE: strict '>' keeps the first maximum on ties; a NaN wins
                            # once and then stays, as np.max/np.argmax do.
                            if v > best or (v != v and best == best):
                                best = v
                                k = i * kw + j
                    out[n, c, ho, wo] = best
                    arg[n, c, ho, wo] = k

    @_jit
    def _maxpool_backward_planes(g, arg, kw, sh, sw, dx):
        N, C, Ho, Wo = g.shape
        H, W = dx.shape[2:]
        for nc in prange(N * C):
            n, c = nc // C, nc % C
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = 0
            for ho in range(Ho):
                for wo in range(Wo):
                    k = arg[n, c, ho, wo]
                    dx[n, c, ho * sh + k // kw, wo * sw + k % kw] += g[n, c, ho, wo]

    def numba_im2col(x, HH, WW, stride, pad, Ho, Wo, out):
        N, C = x.shape[:2]
        _im2col_planes(np.ascontiguousarray(x), *stride, *pad, out.reshape(N, C, HH, WW, Ho, Wo))
        return out

    def numba_col2im(cols, C, H, W, HH, WW, stride, pad, Ho, Wo):
        N = cols.shape[0]
        dx = np.empty((N, C, H, W), dtype=cols.dtype)
        c6 = np.ascontiguousarray(cols).reshape(N, C, HH, WW, Ho, Wo)
        _col2im_planes(c6, *stride, *pad, dx)
        return dx

    def numba_maxpool_forward(x, kh, kw, sh, sw):
        N, C, H, W = x.shape
        Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
        out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
        arg = np.empty((N, C, Ho, Wo), dtype=np.int32)
        _maxpool_forward_planes(np.ascontiguousarray(x), kh, kw, sh, sw, out, arg)
        return out, arg

    def numba_maxpool_backward(g, arg, H, W, kh, kw, sh, sw):
        N, C = g.shape[:2]
        dx = np.empty((N, C, H, W), dtype=g.dtype)
        _maxpool_backward_planes(np.ascontiguousarray(g), np.ascontiguousarray(arg), kw, sh, sw,
                                 dx)
        return dx

    NUMBA_KERNELS = {"im2col": numba_im2col, "col2im": numba_col2im,
                     "maxpool_forward": numba_maxpool_forward,
                     "maxpool_backward": numba_maxpool_backward}


# ---- selection: the one place a kernel set is chosen -------------------------------------------
def _select():
    if NUMBA_KERNELS is None or os.environ.get("AUTOTENSOR_NUMBA", "1") == "0":
        return NUMPY_KERNELS, "numpy"
    return NUMBA_KERNELS, "numba"


KERNELS, BACKEND = _select()
im2col = KERNELS["im2col"]
col2im = KERNELS["col2im"]
maxpool_forward = KERNELS["maxpool_forward"]
maxpool_backward = KERNELS["maxpool_backward"]
