"""The course's naive convolution and max pooling: explicit loops and hand-written backward.

These are the reference the fast paths are measured and checked against, written the way the
course asks students to write them: one Python loop per axis, so each line is a formula from
the definition. They are the only hand-written backward functions in `nn.layers`. All names
are re-exported by `autotensor.nn.layers`.
"""

from __future__ import annotations

import numpy as np

from autotensor.fused.geometry import (
    check_conv2d,
    check_pool2d,
    conv2d_output_shape,
    pool2d_output_shape,
)
from autotensor.validate import is_int, param_dict

__all__ = ["conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
           "max_pool_backward_naive", "conv_output_shape", "pool_output_shape"]


# ---- shapes and checks (shared with the fast versions in layers.py) ----------------------------
# The checks and sizes are the fused ops' (autotensor.fused.geometry). The course's conv_param and
# pool_param add one rule: stride, pad and pool sizes are single ints (the loops index with them).
def conv_output_shape(x_shape, w_shape, stride, pad, b_shape=None):
    """(N, F, H', W') of the convolution of x (N, C, H, W) with w (F, C, HH, WW) (and a bias
    of shape b_shape, when given); ValueError on inconsistent input."""
    _check_ints("conv", stride=stride, pad=pad)
    stride, pad = check_conv2d(x_shape, w_shape, b_shape, stride, pad, op="conv")
    return conv2d_output_shape(x_shape, w_shape, stride, pad)


def pool_output_shape(x_shape, ph, pw, stride):
    """(N, C, H', W') of max pooling x (N, C, H, W) in ph x pw windows; ValueError on
    inconsistent input."""
    _check_ints("max pool", pool_height=ph, pool_width=pw, stride=stride)
    kernel, stride = check_pool2d(x_shape, (ph, pw), stride, op="max pool")
    return pool2d_output_shape(x_shape, kernel, stride)


def _check_ints(op, **values):
    for name, v in values.items():
        if not is_int(v):
            raise ValueError(f"{op}: {name} must be an int, got {v!r}")


# ---- convolution -------------------------------------------------------------------------------
def conv_forward_naive(x, w, b, conv_param):
    """out[n, f, i, j] = sum(x_pad[n, :, window(i, j)] * w[f]) + b[f]; returns (out, cache).

    x (N, C, H, W), w (F, C, HH, WW), b (F,), conv_param {'stride', 'pad'} (zero padding).
    """
    param_dict("conv_forward_naive", "conv_param", conv_param, ("stride", "pad"))
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, F, Ho, Wo = conv_output_shape(x.shape, w.shape, stride, pad, np.shape(b))
    HH, WW = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, Ho, Wo), dtype=np.result_type(x, w, b))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """Gradients of the naive convolution: returns (dx, dw, db).

    Each output element out[n, f, i, j] touched one window of x_pad and all of w[f], so it
    sends dout[n, f, i, j] * w[f] back to that window and dout[n, f, i, j] * window to dw[f].
    """
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, F, Ho, Wo = conv_output_shape(x.shape, w.shape, stride, pad)
    if dout.shape != (N, F, Ho, Wo):
        raise ValueError(f"conv_backward_naive: dout has shape {dout.shape}, the forward output "
                         f"had {(N, F, Ho, Wo)}")
    H, W = x.shape[2:]
    HH, WW = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    rows = slice(i * stride, i * stride + HH)
                    cols = slice(j * stride, j * stride + WW)
                    g = dout[n, f, i, j]
                    dw[f] += xp[n, :, rows, cols] * g
                    dxp[n, :, rows, cols] += w[f] * g
                    db[f] += g
    return dxp[:, :, pad:pad + H, pad:pad + W], dw, db


# ---- max pooling -------------------------------------------------------------------------------
def _pool_param(pool_param):
    return pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]


def max_pool_forward_naive(x, pool_param):
    """out[n, c, i, j] = max of x[n, c, window(i, j)]; pool_param {'pool_height', 'pool_width',
    'stride'}. Returns (out, cache)."""
    param_dict("max_pool_forward_naive", "pool_param", pool_param,
               ("pool_height", "pool_width", "stride"))
    ph, pw, stride = _pool_param(pool_param)
    N, C, Ho, Wo = pool_output_shape(x.shape, ph, pw, stride)
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, c, i, j] = np.max(x[n, c, i * stride:i * stride + ph,
                                               j * stride:j * stride + pw])
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Gradient of the naive max pool: each window's upstream gradient goes to its maximum.

    NOTE: on ties the first maximum (row-major within the window) gets it, like np.argmax.
    """
    x, pool_param = cache
    ph, pw, stride = _pool_param(pool_param)
    N, C, Ho, Wo = pool_output_shape(x.shape, ph, pw, stride)
    if dout.shape != (N, C, Ho, Wo):
        raise ValueError(f"max_pool_backward_naive: dout has shape {dout.shape}, the forward "
                         f"output had {(N, C, Ho, Wo)}")
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    a, k = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * stride + a, j * stride + k] += dout[n, c, i, j]
    return dx
