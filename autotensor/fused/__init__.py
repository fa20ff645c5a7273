"""Fused fast paths with composite twins: conv2d, max_pool2d, batch_norm.

Each public function checks its inputs (a ValueError naming the shapes, before any work),
then runs the fused op (hand-written backward, fast kernels) or, inside
`with at.use_fused(False):`, its composite twin built from primitive ops whose gradient the
tape derives. Both are exported (`*_composite`) so they can be compared directly.

    >>> out = conv2d(x, w, b, stride=2, pad=1)          # x (N, C, H, W), w (F, C, HH, WW)
"""

from __future__ import annotations

import numpy as np

from .. import validate
from ..function import fused_enabled
from ..tensor import _data
from . import geometry
from .batchnorm import batch_norm_composite, batch_norm_fused
from .conv import conv2d_composite, conv2d_fused
from .pool import max_pool2d_composite, max_pool2d_fused

__all__ = ["conv2d", "max_pool2d", "batch_norm", "conv2d_composite", "max_pool2d_composite",
           "batch_norm_composite"]


def conv2d(x, w, b=None, stride=1, pad=0):
    """2-D cross-correlation. x (N, C, H, W), w (F, C, HH, WW), b (F,) or None ->
    (N, F, Ho, Wo), sizes by `geometry.out_size`. stride/pad: int or (h, w)."""
    stride, pad = geometry.check_conv2d(np.shape(_data(x)), np.shape(_data(w)),
                                        None if b is None else np.shape(_data(b)), stride, pad)
    impl = conv2d_fused if fused_enabled() else conv2d_composite
    return impl(x, w, b, stride=stride, pad=pad)


def max_pool2d(x, kernel_size=2, stride=None):
    """Max pooling without padding. x (N, C, H, W) -> (N, C, Ho, Wo), sizes by
    `geometry.out_size`. kernel_size/stride: int or (h, w); stride defaults to kernel_size."""
    kernel, stride = geometry.check_pool2d(np.shape(_data(x)), kernel_size, stride)
    impl = max_pool2d_fused if fused_enabled() else max_pool2d_composite
    return impl(x, kernel, stride)


def batch_norm(x, gamma, beta, running_mean=None, running_var=None, training=True,
               momentum=0.9, eps=1e-5):
    """Batch norm over (N, D) or per channel of (N, C, H, W). running_mean/running_var are
    ndarrays updated in place in training (running = momentum*running + (1-momentum)*batch);
    eval mode (training=False) normalises with them. An integer x is computed in float64."""
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
    validate.number("batch_norm", "momentum", momentum, "in [0, 1]")
    validate.number("batch_norm", "eps", eps, "> 0")
    if not np.issubdtype(np.asarray(_data(x)).dtype, np.floating):
        # NOTE: the fused kernels compute in x's dtype: an integer x would come back truncated
        # to integers, so it is promoted first, as numpy's mean would (it needs no gradient).
        x = np.asarray(_data(x), dtype=np.float64)
    impl = batch_norm_fused if fused_enabled() else batch_norm_composite
    return impl(x, gamma, beta, running_mean, running_var, training=bool(training),
                momentum=float(momentum), eps=float(eps))
