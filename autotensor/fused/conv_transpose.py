"""2-D transposed convolution: the fused op (conv2d's input gradient) and its composite twin.

Shapes: x (N, C, H, W), w (C, F / groups, HH, WW), b (F,) or None, out (N, F, Ho, Wo) with
the sizes of `geometry.conv_transpose2d_output_shape`. Groups are native (each group's GEMMs
read only its own channels); dilation reduces to the plain case (conv_groups.py). The
derivation is in docs/fused_ops.md ("Transposed convolution").
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..autograd import twin_backward
from ..function import Function
from ..tensor import Tensor, _data, _tensor
from . import geometry, kernels
from .conv import conv2d_composite, conv2d_fused
from .conv_groups import dilate_kernel


class ConvTranspose2dFn(Function):
    """out[n, f, sh*h + i - ph, sw*w + j - pw] += sum_c x[n, c, h, w] * w[c, f, i, j]; + b[f]

    The adjoint of conv2d in its input: <conv_transpose2d(x, w), g> = <x, conv2d(g, w)>.
    Fused: cols[n] = W.T @ x[n] (W = w as (C, F*HH*WW)), then col2im. So the gradient is
    conv2d: dx = conv2d(g, w), and dw = conv2d's weight gradient at (g, w) along x,
    dw = sum_n x[n] @ im2col(g)[n].T; both share one im2col of g. Under create_graph both are
    built from the differentiable conv2d itself, so they differentiate again.
    With G groups every product is per group: W as (G, C/G, F/G*HH*WW), x[n] as
    (G, C/G, H*W), im2col(g)[n] as (G, F/G*HH*WW, H*W), one batched matmul each; the
    adjoint is conv2d with the same groups.
    """

    fused = True
    name = "ConvTranspose2d"     # the graph's label: the op, as users call it

    def forward(self, x, w, b, stride, pad, output_padding, groups=1):
        (N, C, H, W), G = x.shape, groups
        _, F, Ho, Wo = geometry.conv_transpose2d_output_shape(x.shape, w.shape, stride, pad,
                                                              output_padding, groups=G)
        HH, WW = w.shape[2:]
        dtype = np.result_type(x, w) if b is None else np.result_type(x, w, b)
        wt = w.reshape(G, C // G, -1).transpose(0, 2, 1).astype(dtype, copy=False)
        cols = np.matmul(wt, x.reshape(N, G, C // G, H * W).astype(dtype, copy=False))
        cols = cols.reshape(N, F * HH * WW, H * W)
        out = kernels.col2im(cols, F, Ho, Wo, HH, WW, stride, pad, H, W)
        out = np.ascontiguousarray(out) if b is None else out + b.astype(dtype).reshape(F, 1, 1)
        self.saved = (x, w)
        self.geometry = (stride, pad, G)
        return out

    def backward(self, g):
        x, w = self.saved
        stride, pad, G = self.geometry
        H, W = x.shape[2:]
        if isinstance(g, Tensor):         # create_graph: the same rule, from conv2d itself
            dx = dw = None
            if self.needs_grad(0):
                dx = conv2d_fused(g, w, None, stride, pad, G)[:, :, :H, :W]
            if self.needs_grad(1):
                along = x if isinstance(x, Tensor) else Tensor(x)
                conv = lambda w_: conv2d_fused(g, w_, None, stride, pad, G)[:, :, :H, :W]  # noqa: E731
                dw = twin_backward(conv, (w,), along)[0]
            return dx, dw, (ops.sum(g, axis=(0, 2, 3)) if self.needs_grad(2) else None)
        N, C = x.shape[:2]
        _, Fg, HH, WW = w.shape
        Kg = Fg * HH * WW
        cols = kernels.pooled_empty((N, G * Kg, H * W), g.dtype)
        kernels.im2col(g, HH, WW, stride, pad, H, W, cols)
        cols = cols.reshape(N, G, Kg, H * W)
        dx = dw = None
        if self.needs_grad(0):
            wg = w.reshape(G, C // G, Kg).astype(g.dtype, copy=False)
            dx = np.matmul(wg, cols).reshape(x.shape)
        if self.needs_grad(1):
            xs = x.reshape(N, G, C // G, H * W).astype(g.dtype, copy=False)
            dw = np.matmul(xs, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
        return dx, dw, (g.sum(axis=(0, 2, 3)) if self.needs_grad(2) else None)


def _undilated_fused(x, w, b, stride, pad, output_padding, groups):
    return ConvTranspose2dFn.apply(x, w, b, stride=stride, pad=pad,
                                   output_padding=output_padding, groups=groups)


def _undilated_composite(x, w, b, stride, pad, output_padding, groups):
    """x zero-stuffed by the stride, padded by HH-1-ph (cropped when negative) plus
    output_padding at the end, then conv2d at stride 1 with w flipped and its axes swapped
    within each group: (C, F/G, ...) as conv2d's (F, C/G, ...)."""
    x = _tensor(x)
    (sh, sw), (HH, WW) = stride, np.shape(_data(w))[2:]
    N, C, H, W = x.shape
    if (sh, sw) != (1, 1):
        stuffed = np.zeros((N, C, sh * (H - 1) + 1, sw * (W - 1) + 1), dtype=x.dtype)
        x = ops.index_put(stuffed, (slice(None), slice(None), slice(None, None, sh),
                                    slice(None, None, sw)), x)
    edges = [(k - 1 - p, k - 1 - p + op) for k, p, op in zip((HH, WW), pad, output_padding)]
    x = ops.pad(x, ((0, 0), (0, 0)) + tuple((max(a, 0), max(b, 0)) for a, b in edges))
    crop = [slice(max(-a, 0), n - max(-b, 0)) for (a, b), n in zip(edges, x.shape[2:])]
    x = x[:, :, crop[0], crop[1]]
    Fg = np.shape(_data(w))[1]
    kernel = ops.reshape(_tensor(w), (groups, C // groups, Fg, HH, WW))
    kernel = ops.reshape(ops.transpose(kernel, (0, 2, 1, 3, 4)), (groups * Fg, C // groups,
                                                                  HH, WW))
    return conv2d_composite(x, ops.flip(kernel, (2, 3)), b, 1, 0, groups)


def _transposed(core, x, w, b, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    stride, pad = geometry.pair(stride, "stride", 1), geometry.pair(padding, "padding", 0)
    output_padding = geometry.pair(output_padding, "output_padding", 0)
    w = dilate_kernel(w, geometry.pair(dilation, "dilation", 1))
    return core(x, w, b, stride, pad, output_padding, int(groups))


def conv_transpose2d_fused(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                           dilation=1):
    """The fused op. No shape checks here: `fused.conv_transpose2d` makes them."""
    return _transposed(_undilated_fused, x, w, b, stride, padding, output_padding, groups, dilation)


def conv_transpose2d_composite(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                               dilation=1):
    """The twin: zero-stuffed input, flipped kernel, conv2d_composite; the tape derives the
    gradient. No shape checks here: `fused.conv_transpose2d` makes them."""
    return _transposed(_undilated_composite, x, w, b, stride, padding, output_padding, groups,
                       dilation)
