"""2-D max pooling: the fused op (argmax kernels) and its composite twin.

Shapes: x (N, C, H, W), out (N, C, Ho, Wo) with the sizes of `geometry.pool2d_output_shape`
(no padding).
NOTE: on ties the gradient goes to the first maximum of the window in row-major order, in
both the fused op and the twin (whose `max(dim=-1)` picks the first maximum too).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..function import Function
from ..tensor import Tensor, _tensor
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
