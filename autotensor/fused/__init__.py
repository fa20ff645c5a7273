"""Fused fast paths with composite twins: conv2d, max_pool2d, batch_norm.

Each public function checks its inputs (a ValueError naming the shapes, before any work),
then runs the fused op (hand-written backward, fast kernels) or, inside
`with at.use_fused(False):`, its composite twin built from primitive ops whose gradient the
tape derives. Both are exported (`*_composite`) so they can be compared directly.

    >>> out = conv2d(x, w, b, stride=2, pad=1)          # x (N, C, H, W), w (F, C, HH, WW)
"""

from __future__ import annotations

import numpy as np

from ..function import fused_enabled
from .batchnorm import BatchNorm, batch_norm_composite, batch_norm_fused
from .conv import Conv2d, conv2d_composite, conv2d_fused
from .pool import MaxPool2d, max_pool2d_composite, max_pool2d_fused

__all__ = ["conv2d", "max_pool2d", "batch_norm", "conv2d_composite", "max_pool2d_composite",
           "batch_norm_composite", "Conv2d", "MaxPool2d", "BatchNorm"]


def conv2d(x, w, b=None, stride=1, pad=0):
    """2-D cross-correlation. x (N, C, H, W), w (F, C, HH, WW), b (F,) or None ->
    (N, F, Ho, Wo), Ho = (H + 2*pad - HH) // stride + 1. stride/pad: int or (h, w)."""
    stride, pad = check_pair(stride, "stride", 1), check_pair(pad, "pad", 0)
    xs, ws = np.shape(_data(x)), np.shape(_data(w))
    if len(xs) != 4 or len(ws) != 4:
        raise ValueError(f"conv2d: x must be (N, C, H, W) and w (F, C, HH, WW), got x of shape "
                         f"{xs} and w of shape {ws}")
    if xs[1] != ws[1]:
        raise ValueError(f"conv2d: x has C={xs[1]} channels (shape {xs}) but w expects "
                         f"C={ws[1]} (shape {ws})")
    if b is not None and np.shape(_data(b)) != (ws[0],):
        raise ValueError(f"conv2d: b must have shape ({ws[0]},) for w of shape {ws}, got "
                         f"{np.shape(_data(b))}")
    hp, wp = xs[2] + 2 * pad[0], xs[3] + 2 * pad[1]
    if ws[2] > hp or ws[3] > wp:
        raise ValueError(f"conv2d: kernel {ws[2:]} is larger than the padded input ({hp}, {wp})"
                         f" (x of shape {xs}, pad {pad})")
    impl = conv2d_fused if fused_enabled() else conv2d_composite
    return impl(x, w, b, stride=stride, pad=pad)


def max_pool2d(x, kernel_size=2, stride=None):
    """Max pooling without padding. x (N, C, H, W) -> (N, C, Ho, Wo), Ho = (H - kh) // sh + 1.
    kernel_size/stride: int or (h, w); stride defaults to kernel_size."""
    kernel = check_pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else check_pair(stride, "stride", 1)
    xs = np.shape(_data(x))
    if len(xs) != 4:
        raise ValueError(f"max_pool2d: x must be (N, C, H, W), got shape {xs}")
    if kernel[0] > xs[2] or kernel[1] > xs[3]:
        raise ValueError(f"max_pool2d: kernel {kernel} is larger than the input {xs[2:]} "
                         f"(x of shape {xs})")
    impl = max_pool2d_fused if fused_enabled() else max_pool2d_composite
    return impl(x, kernel, stride)


def batch_norm(x, gamma, beta, running_mean=None, running_var=None, training=True,
               momentum=0.9, eps=1e-5):
    """Batch norm over (N, D) or per channel of (N, C, H, W). running_mean/running_var are
    ndarrays updated in place in training (running = momentum*running + (1-momentum)*batch);
    eval mode (training=False) normalises with them."""
    xs = np.shape(_data(x))
    if len(xs) not in (2, 4):
        raise ValueError(f"batch_norm: x must be (N, D) or (N, C, H, W), got shape {xs}")
    d = xs[1]
    for name, p in (("gamma", gamma), ("beta", beta)):
        if np.shape(_data(p)) != (d,):
            raise ValueError(f"batch_norm: {name} must have shape ({d},) for x of shape {xs}, "
                             f"got {np.shape(_data(p))}")
    for name, r in (("running_mean", running_mean), ("running_var", running_var)):
        if r is None:
            if not training:
                raise ValueError(f"batch_norm: eval mode (training=False) needs {name}")
            continue
        if not isinstance(r, np.ndarray) or r.shape != (d,):
            raise ValueError(f"batch_norm: {name} must be an ndarray of shape ({d},) for x of "
                             f"shape {xs}, got {type(r).__name__} of shape {np.shape(r)}")
    if training and (xs[0] * (xs[2] * xs[3] if len(xs) == 4 else 1)) < 2:
        raise ValueError(f"batch_norm: training needs more than one value per feature, got x "
                         f"of shape {xs}")
    if not 0.0 <= momentum <= 1.0 or not eps > 0:
        raise ValueError(f"batch_norm: need 0 <= momentum <= 1 and eps > 0, got momentum "
                         f"{momentum}, eps {eps}")
    impl = batch_norm_fused if fused_enabled() else batch_norm_composite
    return impl(x, gamma, beta, running_mean, running_var, training=bool(training),
                momentum=float(momentum), eps=float(eps))


def _data(t):
    return getattr(t, "data", t) if not isinstance(t, np.ndarray) else t


def _is_int(p):
    # NOTE: bool is an int subclass; stride=True is a bug, not a stride of 1.
    return isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_))


def check_pair(v, name, minimum):
    """An int or an (h, w) pair as a tuple of two ints >= minimum; ValueError naming `name`
    otherwise. The one validator of kernel sizes, strides and pads (nn.Conv2d uses it too)."""
    pair = (v, v) if _is_int(v) else tuple(v) if isinstance(v, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(_is_int(p) for p in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return int(pair[0]), int(pair[1])
