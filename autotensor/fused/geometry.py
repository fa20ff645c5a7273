"""Conv and pool geometry: sizes, output shapes and argument checks, in one place.

Every caller imports from here: the fused ops and their twins, the kernels, the course's
naive layers (`nn.layers`), `nn.Conv2d` / `nn.MaxPool2d` and `nn.models`. A new conv or
pool variant extends this module (its own size rule beside `out_size`, its own check
beside `check_conv2d`), never re-derives a size next to its use.

Shapes: x (N, C, H, W), conv weights w (F, C, HH, WW); kernel sizes, strides and pads are
(h, w) pairs once checked.
"""

from __future__ import annotations

import numpy as np

from ..validate import is_int


def pair(v, name, minimum):
    """An int or an (h, w) pair as a tuple of two ints >= minimum; ValueError naming `name`
    otherwise. The one validator of kernel sizes, strides and pads."""
    hw = (v, v) if is_int(v) else tuple(v) if isinstance(v, (tuple, list)) else None
    if hw is None or len(hw) != 2 or not all(is_int(p) for p in hw):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if min(hw) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return int(hw[0]), int(hw[1])


# ---- output sizes ------------------------------------------------------------------------------
def out_size(size, kernel, stride, pad=0):
    """Number of window positions along one axis of length `size`.

    NOTE: floor division, as in PyTorch: windows that do not fit are dropped.
    """
    return (size + 2 * pad - kernel) // stride + 1


def conv2d_output_shape(x_shape, w_shape, stride, pad):
    """(N, F, Ho, Wo) for x (N, C, H, W) and w (F, C, HH, WW); stride, pad: (h, w) pairs."""
    (N, _, H, W), (F, _, HH, WW) = x_shape, w_shape
    return N, F, out_size(H, HH, stride[0], pad[0]), out_size(W, WW, stride[1], pad[1])


def pool2d_output_shape(x_shape, kernel, stride):
    """x_shape with its last two axes (H, W) replaced by (Ho, Wo); kernel, stride: pairs."""
    *lead, H, W = x_shape
    return (*lead, out_size(H, kernel[0], stride[0]), out_size(W, kernel[1], stride[1]))


def arg_dtype(kh, kw):
    """The smallest integer type holding a window offset i*kw + j (less memory traffic)."""
    return np.uint8 if kh * kw <= 256 else np.int32


# ---- argument checks ---------------------------------------------------------------------------
def conv2d_args(stride, pad, op="conv2d"):
    """(stride, pad) as (h, w) pairs: stride >= 1, pad >= 0."""
    return pair(stride, f"{op}: stride", 1), pair(pad, f"{op}: pad", 0)


def pool2d_args(kernel_size, stride, op="max_pool2d"):
    """(kernel, stride) as (h, w) pairs, both >= 1; stride None means stride = kernel_size."""
    kernel = pair(kernel_size, f"{op}: kernel_size", 1)
    return kernel, kernel if stride is None else pair(stride, f"{op}: stride", 1)


def check_conv2d(x_shape, w_shape, b_shape, stride, pad, op="conv2d"):
    """(stride, pad) as (h, w) pairs after checking every conv argument; b_shape None for no
    bias. A ValueError starting with `op` and naming the argument and the shapes otherwise."""
    stride, pad = conv2d_args(stride, pad, op)
    xs, ws = tuple(x_shape), tuple(w_shape)
    if len(xs) != 4 or len(ws) != 4:
        raise ValueError(f"{op}: x must be (N, C, H, W) and w (F, C, HH, WW), got x of shape "
                         f"{xs} and w of shape {ws}")
    if xs[1] != ws[1]:
        raise ValueError(f"{op}: x has C={xs[1]} channels (shape {xs}) but w expects "
                         f"C={ws[1]} (shape {ws})")
    if b_shape is not None and tuple(b_shape) != (ws[0],):
        raise ValueError(f"{op}: b must have shape ({ws[0]},) for w of shape {ws}, got "
                         f"{tuple(b_shape)}")
    hp, wp = xs[2] + 2 * pad[0], xs[3] + 2 * pad[1]
    if ws[2] > hp or ws[3] > wp:
        raise ValueError(f"{op}: kernel {ws[2:]} is larger than the padded input ({hp}, {wp})"
                         f" (x of shape {xs}, pad {pad})")
    return stride, pad


def check_pool2d(x_shape, kernel_size, stride, op="max_pool2d"):
    """(kernel, stride) as (h, w) pairs after checking every pooling argument; stride None
    means stride = kernel_size. A ValueError starting with `op` naming the argument and the
    shapes otherwise."""
    kernel, stride = pool2d_args(kernel_size, stride, op)
    xs = tuple(x_shape)
    if len(xs) != 4:
        raise ValueError(f"{op}: x must be (N, C, H, W), got shape {xs}")
    if kernel[0] > xs[2] or kernel[1] > xs[3]:
        raise ValueError(f"{op}: kernel {kernel} is larger than the input {xs[2:]} "
                         f"(x of shape {xs})")
    return kernel, stride
