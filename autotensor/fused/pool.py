"""2-D max pooling: the fused op (argmax kernels) and its composite twin.

Shapes: x (N, C, H, W), out (N, C, Ho, Wo) with the sizes of `geometry.pool2d_output_shape`.
MaxPool2dFn and its twin pool without padding; PyTorch's padding (-inf), dilation and
ceil_mode are reduced to them below, and adaptive max pooling is a composite.
NOTE: on ties the gradient goes to the first maximum of the window in row-major order, in
both the fused op and the twin (whose `max(dim=-1)` picks the first maximum too).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..function import Function
from ..tensor import Tensor, _data, _tensor
from . import geometry, kernels


class MaxPool2dFn(Function):
    """out[n, c, ho, wo] = max_{i<kh, j<kw} x[n, c, sh*ho + i, sw*wo + j]

    Fused: forward records each window's argmax; backward adds g at those positions.
    Under create_graph that same scatter is recorded as `index_put` at the argmax positions
    (a rule of its own: the gradient is linear in g with constant positions, so it is
    differentiable to any order and needs no saved x).
    """

    fused = True
    name = "MaxPool2d"           # the graph's label: the op, as users call it

    def forward(self, x, kernel, stride):
        out, arg = kernels.maxpool_forward(x, *kernel, *stride)
        self.saved = arg
        self.in_shape, self.kernel, self.stride = x.shape, kernel, stride
        return out

    def backward(self, g):
        arg = self.saved
        if isinstance(g, Tensor):
            zeros = np.zeros(self.in_shape, dtype=g.dtype)
            return ops.index_put(zeros, self.argmax_index(), g, accumulate=True)
        return kernels.maxpool_backward(np.asarray(g), arg, *self.in_shape[2:], *self.kernel,
                                        *self.stride)

    def argmax_index(self):
        """(n, c, h, w) index arrays of each window's maximum in x, shaped like the output."""
        arg = self.saved.astype(np.intp)
        kw, (sh, sw) = self.kernel[1], self.stride
        N, C, Ho, Wo = arg.shape
        n, c, ho, wo = np.ogrid[:N, :C, :Ho, :Wo]
        return (np.broadcast_to(n, arg.shape), np.broadcast_to(c, arg.shape),
                ho * sh + arg // kw, wo * sw + arg % kw)


def max_pool2d_fused(x, kernel_size=2, stride=None):
    """The fused op. kernel_size/stride: int or (h, w); stride defaults to kernel_size.
    No shape checks here: `fused.max_pool2d` makes them."""
    kernel, stride = geometry.pool2d_args(kernel_size, stride)
    return MaxPool2dFn.apply(x, kernel=kernel, stride=stride)


def max_pool2d_composite(x, kernel_size=2, stride=None):
    """The twin: a reshape (windows tile the input) or stacked strided slices (they overlap),
    then `max` over the window axes; the tape derives the gradient. kernel_size/stride: int
    or (h, w). No shape checks here: `fused.max_pool2d` makes them."""
    x = _tensor(x)
    kernel, stride = geometry.pool2d_args(kernel_size, stride)
    (kh, kw), (sh, sw) = kernel, stride
    N, C, Ho, Wo = geometry.pool2d_output_shape(x.shape, kernel, stride)
    if (kh, kw) == (sh, sw):
        if (Ho * kh, Wo * kw) != x.shape[2:]:
            x = x[:, :, :Ho * kh, :Wo * kw]
        windows = ops.permute(ops.reshape(x, (N, C, Ho, kh, Wo, kw)), 0, 1, 2, 4, 3, 5)
        return ops.max(ops.reshape(windows, (N, C, Ho, Wo, kh * kw)), dim=-1).values
    shifted = [x[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
               for i in range(kh) for j in range(kw)]
    return ops.max(ops.stack(shifted, axis=-1), dim=-1).values


# ---- PyTorch's arguments: padding, dilation, ceil_mode, return_indices ------------------------
def _padded(x, kernel, stride, pad, dilation, ceil_mode, value):
    """x padded with `value` so that floor-mode windows compute PyTorch's pooling."""
    x = _tensor(x)
    edges = geometry.pool_padding(x.shape, kernel, stride, pad, dilation, ceil_mode)
    if edges == ((0, 0), (0, 0)):
        return x
    return ops.pad(x, ((0, 0), (0, 0)) + edges, value=value)


def windows(x, kernel, stride, dilation):
    """(N, C, Ho, Wo, kh*kw): every window of x (no padding) on the last axis, in row-major
    order; stacked strided slices, so the tape derives the gradient."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    Ho, Wo = geometry.pool2d_output_shape(x.shape, kernel, stride, dilation=dilation)[2:]
    return ops.stack([x[:, :, i * dh:i * dh + sh * (Ho - 1) + 1:sh,
                        j * dw:j * dw + sw * (Wo - 1) + 1:sw]
                      for i in range(kh) for j in range(kw)], axis=-1)


def max_pool2d_padded(x, kernel, stride, pad, dilation, ceil_mode, fused):
    """Max pooling with PyTorch's padding (-inf), dilation and ceil_mode; every argument a
    checked pair. NOTE: the fused kernels have no dilation: dilated windows take the twin."""
    xp = _padded(x, kernel, stride, pad, dilation, ceil_mode, -np.inf)
    if dilation != (1, 1):
        return ops.max(windows(xp, kernel, stride, dilation), dim=-1).values
    return (max_pool2d_fused if fused else max_pool2d_composite)(xp, kernel, stride)


def max_pool2d_indices(x, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's return_indices: the flat index h * W + w in x's plane of each window's
    (first) maximum, as an int64 ndarray shaped like the output."""
    x = np.asarray(_data(x))
    H, W = x.shape[2:]
    edges = ((0, 0), (0, 0)) + geometry.pool_padding(x.shape, kernel, stride, pad, dilation,
                                                     ceil_mode)
    xp = np.pad(x, edges, constant_values=-np.inf)
    flat = np.pad(np.arange(H * W).reshape(1, 1, H, W), edges, constant_values=-1)
    vals = windows(Tensor(xp), kernel, stride, dilation).data
    where = windows(Tensor(np.broadcast_to(flat, xp.shape).copy()), kernel, stride, dilation)
    pick = np.argmax(vals, axis=-1)[..., None]
    return np.take_along_axis(where.data, pick, axis=-1)[..., 0].astype(np.int64)


# ---- adaptive max pooling ----------------------------------------------------------------------
def adaptive_max_pool2d(x, output_size, return_indices=False):
    """PyTorch's adaptive max pooling of x (N, C, H, W): output cell (i, j) is the max over
    rows floor(i*H/Ho) .. ceil((i+1)*H/Ho) and the same columns; ties pick the window's first
    maximum in row-major order (gradient included). output_size: a checked pair."""
    x = _tensor(x)
    N, C, H, W = x.shape
    values, indices = [], []
    for hs, he in geometry.adaptive_windows(H, output_size[0]):
        for ws, we in geometry.adaptive_windows(W, output_size[1]):
            m = ops.max(ops.reshape(x[:, :, hs:he, ws:we], (N, C, -1)), dim=-1)
            values.append(m.values)
            local = np.asarray(_data(m.indices))
            indices.append((hs + local // (we - ws)) * W + ws + local % (we - ws))
    out = ops.reshape(ops.stack(values, axis=-1), (N, C, *output_size))
    if return_indices:
        return out, np.stack(indices, axis=-1).reshape(N, C, *output_size).astype(np.int64)
    return out
