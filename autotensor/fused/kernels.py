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
import tempfile
import threading

import numpy as np

# ---- scratch buffers ---------------------------------------------------------------------------
# Fresh large arrays page-fault on first touch (~4 GB/s here), slower than the kernels that
# fill them. Scratch arrays that never leave an op (conv columns, their gradient) are reused.
_local = threading.local()


def workspace(name, shape, dtype):
    """A scratch array of `shape`/`dtype`, reused across calls (per thread, per name, per dtype).

    Its content is garbage; it is overwritten by the next call asking for the same name, so
    never return it (or a view of it) to the caller of an op.
    """
    bufs = _local.__dict__.setdefault("bufs", {})
    key = (name, np.dtype(dtype))
    size = int(np.prod(shape))
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = bufs[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def clear_workspace():
    """Release this thread's scratch buffers (they hold the largest conv columns seen)."""
    _local.__dict__.pop("bufs", None)


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


# ---- selection: the one place a kernel set is chosen -------------------------------------------
def _select():
    if os.environ.get("AUTOTENSOR_NUMBA", "1") == "0":
        return NUMPY_KERNELS, "numpy"
    return NUMPY_KERNELS, "numpy"


KERNELS, BACKEND = _select()
im2col = KERNELS["im2col"]
col2im = KERNELS["col2im"]
maxpool_forward = KERNELS["maxpool_forward"]
maxpool_backward = KERNELS["maxpool_backward"]
_ = tempfile
