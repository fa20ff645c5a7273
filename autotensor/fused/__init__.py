"""Fused fast paths with composite twins: conv2d, conv_transpose2d, max_pool2d, batch_norm.

Each public function checks its inputs (a ValueError naming the shapes, before any work),
then runs the fused op (hand-written backward, fast kernels) or, inside
`with at.use_fused(False):`, its composite twin built from primitive ops whose gradient the
tape derives. Both are exported (`*_composite`) so they can be compared directly.

    >>> out = conv2d(x, w, b, stride=2, pad=1)          # x (N, C, H, W), w (F, C, HH, WW)

Signatures, defaults and semantics are PyTorch's (torch.nn.functional.conv2d, ...); the
pooling ops with no fast path of their own (avg_pool2d, the adaptive pools) are composites.
"""

from __future__ import annotations

import numpy as np

from .. import ops, validate
from ..function import fused_enabled
from ..tensor import _data, _tensor
from . import geometry
from .avg_pool import adaptive_avg_pool2d as _adaptive_avg_pool2d
from .avg_pool import avg_pool2d as _avg_pool2d
from .batchnorm import batch_norm_composite, batch_norm_fused
from .conv import conv2d_composite, conv2d_fused
from .conv_groups import dilate_kernel
from .conv_transpose import conv_transpose2d_composite, conv_transpose2d_fused
from .pool import adaptive_max_pool2d as _adaptive_max_pool2d
from .pool import (
    max_pool2d_composite,
    max_pool2d_indices,
    max_pool2d_padded,
)

__all__ = ["conv2d", "max_pool2d", "batch_norm", "conv2d_composite", "max_pool2d_composite",
           "batch_norm_composite", "conv_transpose2d", "conv_transpose2d_composite",
           "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"]


def _batched(x, op):
    """(x as (N, C, H, W), unbatched): a (C, H, W) input gains a batch axis, as PyTorch's."""
    x = _tensor(x)
    if x.ndim == 3:
        return ops.reshape(x, (1, *x.shape)), True
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be (C, H, W) or (N, C, H, W), got shape {x.shape}")
    return x, False


def _unbatched(out, unbatched):
    return ops.reshape(out, out.shape[1:]) if unbatched else out


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,  # noqa: A002
           pad=None):
    """PyTorch's 2-D cross-correlation. input (N, C, H, W) or (C, H, W), weight
    (F, C / groups, HH, WW), bias (F,) or None -> (N, F, Ho, Wo). stride, padding, dilation:
    int or (h, w); padding also 'valid' or 'same'. `pad=` is the course's alias of padding."""
    name = "padding"
    if pad is not None:
        if not (isinstance(padding, int) and padding == 0):
            raise TypeError("conv2d: pass padding= or its alias pad=, not both")
        padding, name = pad, "pad"
    x, unbatched = _batched(input, "conv2d")
    ws = np.shape(_data(weight))
    stride_hw = geometry.pair(stride, "conv2d: stride", 1)
    dilation = geometry.pair(dilation, "conv2d: dilation", 1)
    kernel = ws[2:] if len(ws) == 4 else (1, 1)
    padding, extra = geometry.conv_padding(padding, kernel, dilation, stride_hw, name=name)
    if extra != (0, 0):          # 'same' with an even dilated kernel: the odd pixel at the end
        x = ops.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
    stride, padding = geometry.check_conv2d(x.shape, ws, None if bias is None
                                            else np.shape(_data(bias)), stride_hw, padding,
                                            dilation=dilation, groups=groups)
    core = conv2d_fused if fused_enabled() else conv2d_composite
    out = core(x, dilate_kernel(weight, dilation), bias, stride, padding, int(groups))
    return _unbatched(out, unbatched)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0,  # noqa: A002
                     output_padding=0, groups=1, dilation=1):
    """PyTorch's 2-D transposed convolution (conv2d's input gradient). input (N, C, H, W) or
    (C, H, W), weight (C, F / groups, HH, WW), bias (F,) or None -> (N, F, Ho, Wo) with
    Ho = (H - 1) * sh - 2 * ph + dh * (HH - 1) + output_padding + 1."""
    x, unbatched = _batched(input, "conv_transpose2d")
    geometry.check_conv_transpose2d(x.shape, np.shape(_data(weight)), None if bias is None
                                    else np.shape(_data(bias)), stride, padding,
                                    output_padding, dilation, groups)
    impl = conv_transpose2d_fused if fused_enabled() else conv_transpose2d_composite
    out = impl(x, weight, bias, stride, padding, output_padding, int(groups), dilation)
    return _unbatched(out, unbatched)


def max_pool2d(input, kernel_size=2, stride=None, padding=0, dilation=1,  # noqa: A002
               ceil_mode=False, return_indices=False):
    """PyTorch's max pooling of input (N, C, H, W) or (C, H, W), padded with -inf;
    kernel_size/stride/padding/dilation: int or (h, w); stride defaults to kernel_size.
    return_indices=True also returns each maximum's flat index h * W + w (int64 ndarray)."""
    x, unbatched = _batched(input, "max_pool2d")
    kernel, stride, pad, dilation = geometry.check_pool2d_padded(
        x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    out = _unbatched(max_pool2d_padded(x, kernel, stride, pad, dilation, bool(ceil_mode),
                                       fused_enabled()), unbatched)
    if not return_indices:
        return out
    idx = max_pool2d_indices(x, kernel, stride, pad, dilation, bool(ceil_mode))
    return out, idx[0] if unbatched else idx


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,  # noqa: A002
               count_include_pad=True, divisor_override=None):
    """PyTorch's average pooling of input (N, C, H, W) or (C, H, W), zero-padded;
    kernel_size/stride/padding: int or (h, w); stride defaults to kernel_size."""
    x, unbatched = _batched(input, "avg_pool2d")
    kernel, stride, pad, _ = geometry.check_pool2d_padded(x.shape, kernel_size, stride, padding,
                                                          1, ceil_mode, op="avg_pool2d")
    if divisor_override is not None and (not validate.is_int(divisor_override)
                                         or divisor_override == 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a non-zero integer, got "
                         f"{divisor_override!r}")
    out = _avg_pool2d(x, kernel, stride, pad, bool(ceil_mode), bool(count_include_pad),
                      divisor_override)
    return _unbatched(out, unbatched)


def adaptive_avg_pool2d(input, output_size):  # noqa: A002
    """PyTorch's adaptive average pooling of input (N, C, H, W) or (C, H, W) to output_size
    (an int or an (h, w) pair whose None entries keep the input's size)."""
    x, unbatched = _batched(input, "adaptive_avg_pool2d")
    size = geometry.adaptive_output_size(x.shape, output_size, "adaptive_avg_pool2d")
    return _unbatched(_adaptive_avg_pool2d(x, size), unbatched)


def adaptive_max_pool2d(input, output_size, return_indices=False):  # noqa: A002
    """PyTorch's adaptive max pooling of input (N, C, H, W) or (C, H, W) to output_size;
    return_indices=True also returns each maximum's flat index h * W + w (int64 ndarray)."""
    x, unbatched = _batched(input, "adaptive_max_pool2d")
    size = geometry.adaptive_output_size(x.shape, output_size, "adaptive_max_pool2d")
    out, idx = _adaptive_max_pool2d(x, size, return_indices=True)
    out = _unbatched(out, unbatched)
    if not return_indices:
        return out
    return out, idx[0] if unbatched else idx


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

# ---- recurrent cells (issue 13): one LSTM or GRU time step, fused/rnn.py ----------------------
from .rnn import (  # noqa: E402
    gru_cell,
    gru_cell_composite,
    lstm_cell,
    lstm_cell_composite,
)

__all__ += ["lstm_cell", "lstm_cell_composite", "gru_cell", "gru_cell_composite"]
