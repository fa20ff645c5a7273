"""2-D convolution: the fused im2col + GEMM op and its composite twin.

Shapes: x (N, C, H, W), w (F, C, HH, WW), b (F,) or None, out (N, F, Ho, Wo) with the
sizes of `geometry.conv2d_output_shape`. The derivation of the backward is in docs/fused_ops.md.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..autograd import twin_backward
from ..function import Function
from ..tensor import Tensor, _tensor
from . import conv_algorithms, geometry, kernels


class Conv2dFn(Function):
    """out[n, f] = sum_{c,i,j} w[f, c, i, j] * xpad[n, c, sh*ho + i, sw*wo + j] + b[f]

    Fused: im2col into pooled memory, then batched BLAS GEMMs; a large batch is cut into
    slices run on parallel threads (`conv_algorithms`, the rule). cols[n] is (K, P) with
    K = C*HH*WW and P = Ho*Wo, so every GEMM result is already in its final memory order:
    out[n] = W @ cols[n], dcols[n] = W.T @ g[n], dW = (sum_n cols[n] @ g[n].T).T.
    With a bias, cols gets a row of ones and W the column b: the GEMMs then add b and
    compute db = sum(g) with no extra pass over the output.
    Under create_graph the gradient comes from the composite twin (differentiable to any
    order), run on x, w, b rebuilt from the saved cols and wb (nothing more is saved).
    """

    fused = True
    name = "Conv2d"              # the graph's label: the op, as users call it

    def forward(self, x, w, b, stride, pad):
        C = x.shape[1]
        F, _, HH, WW = w.shape
        N, _, Ho, Wo = geometry.conv2d_output_shape(x.shape, w.shape, stride, pad)
        dtype = np.result_type(x, w) if b is None else np.result_type(x, w, b)
        K = C * HH * WW
        wb = w.reshape(F, K) if b is None else np.concatenate([w.reshape(F, K), b[:, None]], 1)
        wb = wb.astype(dtype, copy=False)
        cols = kernels.pooled_empty((N, wb.shape[1], Ho * Wo), dtype)
        if b is not None:
            cols[:, K] = 1
        x = x.astype(dtype, copy=False)
        out = np.empty((N, F, Ho * Wo), dtype)

        def part(s):                  # one slice of the batch (conv_algorithms: the rule)
            kernels.im2col(x[s], HH, WW, stride, pad, Ho, Wo, cols[s])
            np.matmul(wb, cols[s], out=out[s])
        conv_algorithms.run(part, conv_algorithms.batch_slices(N, F, K, Ho * Wo))
        out = out.reshape(N, F, Ho, Wo)
        # The columns are kept for dW (pooled memory: reused once this node is freed).
        self.saved = (cols, wb)
        self.geometry = (x.shape, w.shape, stride, pad)
        return out

    def backward(self, g):
        cols, wb = self.saved
        if isinstance(g, Tensor):      # create_graph: differentiate the twin instead
            return twin_backward(self.twin, self.twin_inputs(), g)
        (N, C, H, W), wshape, stride, pad = self.geometry
        F, _, HH, WW = wshape
        Ho, Wo = g.shape[2:]
        K = C * HH * WW
        g3 = g.reshape(N, F, Ho * Wo).astype(cols.dtype, copy=False)
        need_w = self.needs_grad(1) or self.needs_grad(2)
        need_x = self.needs_grad(0)
        # NOTE: dW computed transposed, cols[n] @ g[n].T, one GEMM per sample, summed after:
        # OpenBLAS ran this orientation 25-40% faster than g[n] @ cols[n].T on the 7x7 and
        # 64->64 cases.
        gwt = kernels.pooled_empty((N, cols.shape[1], F), cols.dtype) if need_w else None
        dcols = kernels.pooled_empty((N, K, Ho * Wo), cols.dtype) if need_x else None
        dx = np.empty((N, C, H, W), cols.dtype) if need_x else None
        wt = wb[:, :K].T

        def part(s):                  # one slice of the batch (conv_algorithms: the rule)
            if need_w:
                np.matmul(cols[s], g3[s].transpose(0, 2, 1), out=gwt[s])
            if need_x:
                np.matmul(wt, g3[s], out=dcols[s])
                kernels.col2im(dcols[s], C, H, W, HH, WW, stride, pad, Ho, Wo, out=dx[s])
        conv_algorithms.run(part, conv_algorithms.batch_slices(N, F, K, Ho * Wo))
        dw = db = None
        if need_w:
            dwb = gwt.sum(axis=0).T
            dw = dwb[:, :K].reshape(wshape)
            db = dwb[:, K] if wb.shape[1] > K else None
        return dx, dw, db

    def twin(self, x, w, b):
        return conv2d_composite(x, w, b, *self.geometry[2:])

    def twin_inputs(self):
        """x, w, b as Tensors on the graph, their values rebuilt from cols and wb."""
        cols, wb = self.saved
        xshape, wshape, stride, pad = self.geometry
        K = int(np.prod(wshape[1:]))
        x = _x_from_cols(cols[:, :K], xshape, wshape[2:], stride, pad)
        b = self.graph_input(2, wb[:, K]) if wb.shape[1] > K else None
        return self.graph_input(0, x), self.graph_input(1, wb[:, :K].reshape(wshape)), b


def _x_from_cols(cols, xshape, kernel, stride, pad):
    """The x whose im2col is `cols` (N, C*HH*WW, Ho*Wo). Pixels no window covers are 0: the
    output does not depend on them."""
    (N, C, H, W), (HH, WW), (sh, sw), (ph, pw) = xshape, kernel, stride, pad
    Ho, Wo = geometry.out_size(H, HH, sh, ph), geometry.out_size(W, WW, sw, pw)
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    c6 = cols.reshape(N, C, HH, WW, Ho, Wo)
    for i in range(HH):
        for j in range(WW):
            xp[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] = c6[:, :, i, j]
    return xp[:, :, ph:ph + H, pw:pw + W]


def conv2d_fused(x, w, b=None, stride=1, pad=0):
    """The fused op. stride/pad: int or (h, w). No shape checks here: `fused.conv2d` makes them."""
    stride, pad = geometry.conv2d_args(stride, pad)
    return Conv2dFn.apply(x, w, b, stride=stride, pad=pad)


def conv2d_composite(x, w, b=None, stride=1, pad=0):
    """The twin: pad + HH*WW shifted strided slices stacked + one matmul; the tape derives
    the gradient. stride/pad: int or (h, w). No shape checks here: `fused.conv2d` makes them."""
    x = _tensor(x)
    stride, pad = geometry.conv2d_args(stride, pad)
    (sh, sw), (ph, pw) = stride, pad
    C = x.shape[1]
    F, _, HH, WW = w.shape
    N, _, Ho, Wo = geometry.conv2d_output_shape(x.shape, w.shape, stride, pad)
    if ph or pw:
        x = ops.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    shifted = [x[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
               for i in range(HH) for j in range(WW)]
    cols = ops.reshape(ops.stack(shifted, axis=2), (N, C * HH * WW, Ho * Wo))
    out = ops.reshape(ops.matmul(ops.reshape(w, (F, C * HH * WW)), cols), (N, F, Ho, Wo))
    if b is not None:
        out = out + ops.reshape(b, (1, F, 1, 1))
    return out
