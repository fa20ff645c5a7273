"""Pure array kernels behind the fused ops: numpy versions and numba versions, same signatures.

No autograd here: ndarrays in, ndarrays out. Every kernel exists twice, `numpy_<name>` here
(always importable) and `numba_<name>` in kernels_numba.py (when numba imports), and the
public names are bound to one set in ONE place, the selection at the bottom: numba unless
`AUTOTENSOR_NUMBA=0` (or numba is missing). Tests run both sets directly.

Layouts: conv columns are (N, C*HH*WW, Ho*Wo), i.e. a (N, C, HH, WW, Ho, Wo) block per
sample; max-pool argmax indices are offsets i*kw + j inside each window (uint8 when they fit).
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

from .geometry import arg_dtype, pool2d_output_shape

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


# ---- numpy kernels -----------------------------------------------------------------------------
def numpy_im2col(x, HH, WW, stride, pad, Ho, Wo, out):
    """out[n, (c, i, j), (ho, wo)] = xpad[n, c, sh*ho + i, sw*wo + j] for out (N, K', Ho*Wo).

    Fills the first K = C*HH*WW rows of each sample (K' > K leaves room for a bias row).
    """
    (sh, sw), (ph, pw) = stride, pad
    N, C = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    o6 = out[:, :C * HH * WW].reshape(N, C, HH, WW, Ho, Wo)
    for i in range(HH):              # a loop over kernel offsets: each step is one strided copy
        for j in range(WW):
            o6[:, :, i, j] = xp[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
    return out


def numpy_col2im(cols, C, H, W, HH, WW, stride, pad, Ho, Wo, out=None):
    """The adjoint of im2col: dx (N, C, H, W) summing every column entry back to its pixel.

    Written into `out` (N, C, H, W) when given."""
    (sh, sw), (ph, pw) = stride, pad
    N = cols.shape[0]
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    c6 = cols.reshape(N, C, HH, WW, Ho, Wo)
    for i in range(HH):
        for j in range(WW):
            dxp[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += c6[:, :, i, j]
    if out is None:
        return dxp[:, :, ph:ph + H, pw:pw + W]
    out[...] = dxp[:, :, ph:ph + H, pw:pw + W]
    return out


def numpy_maxpool_forward(x, kh, kw, sh, sw):
    """(out, arg): window maxima (N, C, Ho, Wo) and the offset i*kw + j of each maximum.

    NOTE: ties go to the first maximum in row-major order inside the window (np.argmax), and
    a NaN counts as the maximum, as in np.max.
    """
    N, C, Ho, Wo = pool2d_output_shape(x.shape, (kh, kw), (sh, sw))
    if kh == sh and kw == sw:       # windows tile the (cropped) input: a reshape, no gather
        xr = x[:, :, :Ho * kh, :Wo * kw].reshape(N, C, Ho, kh, Wo, kw)
        win = xr.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, kh * kw)
    else:                           # overlapping or gapped windows: a strided window view
        view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
        win = view[:, :, ::sh, ::sw][:, :, :Ho, :Wo].reshape(N, C, Ho, Wo, kh * kw)
    arg = np.argmax(win, axis=-1).astype(arg_dtype(kh, kw))
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


def numpy_bn_forward(x, gamma, beta, eps, mean=None, var=None):
    """(out, mean, var): x (N, D) or (N, C, H, W) normalised per feature / channel.

    Training (batch statistics) when `mean` is None, else eval with the given mean/var.
    Statistics are float64 (NOTE: float32 data summed in float64 keeps ~1e-16 accuracy).
    NOTE: two passes, mean then mean((x - mean)**2): no cancellation when |mean| >> std.
    """
    x3 = x.reshape(x.shape[0], x.shape[1], -1)
    if mean is None:
        mean = x3.mean(axis=(0, 2), dtype=np.float64)
        xc = x3 - mean[:, None]
        var = np.einsum("ncs,ncs->c", xc, xc) / (x3.size // x3.shape[1])
    else:
        xc = x3 - mean[:, None]
    out = xc * (gamma / np.sqrt(var + eps))[:, None] + beta[:, None]
    return out.astype(x.dtype, copy=False).reshape(x.shape), mean, var


def numpy_bn_backward(g, x, gamma, mean, var, eps, training, need_dx=True):
    """(dx or None, dgamma, dbeta): the closed form derived in docs/fused_ops.md."""
    g3, x3 = g.reshape(x.shape[0], x.shape[1], -1), x.reshape(x.shape[0], x.shape[1], -1)
    m = x3.size // x3.shape[1]
    istd = 1.0 / np.sqrt(var + eps)
    xc = x3 - mean[:, None]
    dbeta = g3.sum(axis=(0, 2), dtype=np.float64)
    sgx = np.einsum("ncs,ncs->c", g3, xc)
    dx = None
    if need_dx:
        a, b = (dbeta / m, sgx * istd * istd / m) if training else (0.0 * dbeta, 0.0 * dbeta)
        dx = (gamma * istd)[:, None] * (g3 - a[:, None] - xc * b[:, None])
        dx = dx.astype(x.dtype, copy=False).reshape(x.shape)
    return dx, sgx * istd, dbeta


# ---- erf (the exact GELU) ----------------------------------------------------------------------
_math_erf = np.frompyfunc(math.erf, 1, 1)


def numpy_erf(x):
    """erf of a float32/float64 array per element through math.erf: exact to double precision,
    ~50 ns an element (numpy has no erf)."""
    return _math_erf(x).astype(x.dtype)


NUMPY_KERNELS = {"erf": numpy_erf, "im2col": numpy_im2col, "col2im": numpy_col2im,
                 "maxpool_forward": numpy_maxpool_forward,
                 "maxpool_backward": numpy_maxpool_backward,
                 "bn_forward": numpy_bn_forward, "bn_backward": numpy_bn_backward}


# ---- selection: the one place a kernel set is chosen -------------------------------------------
try:
    from . import kernels_numba
    NUMBA_KERNELS = kernels_numba.KERNELS
    numba = kernels_numba.numba
except ImportError:                      # numba is not installed: numpy kernels only
    NUMBA_KERNELS = numba = None

if NUMBA_KERNELS is None or os.environ.get("AUTOTENSOR_NUMBA", "1") == "0":
    KERNELS, BACKEND = NUMPY_KERNELS, "numpy"
else:
    KERNELS, BACKEND = NUMBA_KERNELS, "numba"
erf = KERNELS["erf"]
im2col = KERNELS["im2col"]
col2im = KERNELS["col2im"]
maxpool_forward = KERNELS["maxpool_forward"]
maxpool_backward = KERNELS["maxpool_backward"]
bn_forward = KERNELS["bn_forward"]
bn_backward = KERNELS["bn_backward"]
