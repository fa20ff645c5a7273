"""2-D convolution: the fused im2col + GEMM op and its composite twin.

Shapes: x (N, C, H, W), w (F, C / groups, HH, WW), b (F,) or None, out (N, F, Ho, Wo) with
the sizes of `geometry.conv2d_output_shape`. Groups are native: each group's GEMM reads only
its own C / groups channels. The derivation of the backward is in docs/fused_ops.md.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..autograd import twin_backward
from ..function import Function
from ..tensor import Tensor, _tensor
from . import conv_algorithms, geometry, kernels


class Conv2dFn(Function):
    """out[n, f] = sum_{c,i,j} w[f, c, i, j] * xpad[n, g*Cg + c, sh*ho + i, sw*wo + j] + b[f]

    (g = f // Fg, the group of output channel f; Cg = C / groups and Fg = F / groups.)
    Fused: im2col into pooled memory, then batched BLAS GEMMs; a large batch is cut into
    slices run on parallel threads (`conv_algorithms`, the rule). cols[n] is (K, P) with
    K = C*HH*WW and P = Ho*Wo, viewed per group as (G, Kg, P), Kg = Cg*HH*WW, and W (F, Kg)
    as (G, Fg, Kg), so every GEMM result is already in its final memory order:
    out[n, g] = W[g] @ cols[n, g], dcols[n, g] = W[g].T @ g[n, g],
    dW[g] = (sum_n cols[n, g] @ g[n, g].T).T: each group reads only its own channels, the
    work of a plain conv divided by G (groups=1: one group, the plain conv).
    With a bias and one group, cols gets a row of ones and W the column b: the GEMMs then
    add b and compute db = sum(g) with no extra pass over the output. With several groups
    the row would have to be repeated inside every group's block of cols, which im2col does
    not write: b is added to the output and db = sum(g) taken in a pass of their own.
    Under create_graph the gradient comes from the composite twin (differentiable to any
    order), run on x, w, b rebuilt from the saved cols, wb and b (nothing more is saved).
    """

    fused = True
    name = "Conv2d"              # the graph's label: the op, as users call it

    def forward(self, x, w, b, stride, pad, groups=1):
        C, G = x.shape[1], groups
        F, Cg, HH, WW = w.shape
        N, _, Ho, Wo = geometry.conv2d_output_shape(x.shape, w.shape, stride, pad)
        dtype = np.result_type(x, w) if b is None else np.result_type(x, w, b)
        K, Kg, P = C * HH * WW, Cg * HH * WW, Ho * Wo
        ride = b is not None and G == 1           # the bias rides in the GEMM
        wb = np.concatenate([w.reshape(F, Kg), b[:, None]], 1) if ride else w.reshape(F, Kg)
        wb = wb.astype(dtype, copy=False)
        wg = wb.reshape(G, F // G, wb.shape[1])        # a view: (G, Fg, Kg [+ 1])
        bias = None if b is None or ride else b.astype(dtype, copy=False)
        cols = kernels.pooled_empty((N, K + ride, P), dtype)
        if ride:
            cols[:, K] = 1
        x = x.astype(dtype, copy=False)
        out = np.empty((N, F, P), dtype)

        def part(s):                  # one slice of the batch (conv_algorithms: the rule)
            n = s.stop - s.start
            kernels.im2col(x[s], HH, WW, stride, pad, Ho, Wo, cols[s])
            np.matmul(wg, cols[s].reshape(n, G, wg.shape[2], P),
                      out=out[s].reshape(n, G, F // G, P))
            if bias is not None:
                out[s] += bias[:, None]
        conv_algorithms.run(part, conv_algorithms.batch_slices(N, F, Kg, P))
        out = out.reshape(N, F, Ho, Wo)
        # The columns are kept for dW (pooled memory: reused once this node is freed).
        self.saved = (cols, wb, bias)
        self.geometry = (x.shape, w.shape, stride, pad, G)
        return out

    def backward(self, g):
        cols, wb, bias = self.saved
        if isinstance(g, Tensor):      # create_graph: differentiate the twin instead
            return twin_backward(self.twin, self.twin_inputs(), g)
        (N, C, H, W), wshape, stride, pad, G = self.geometry
        F, _, HH, WW = wshape
        Ho, Wo = g.shape[2:]
        K, Kb, P = C * HH * WW, wb.shape[1], Ho * Wo
        Kg = K // G
        g4 = g.reshape(N, G, F // G, P).astype(cols.dtype, copy=False)
        need_w = self.needs_grad(1) or (self.needs_grad(2) and bias is None)
        need_x = self.needs_grad(0)
        # NOTE: dW computed transposed, cols[n] @ g[n].T, one GEMM per sample, summed after:
        # OpenBLAS ran this orientation 25-40% faster than g[n] @ cols[n].T on the 7x7 and
        # 64->64 cases.
        gwt = kernels.pooled_empty((N, G, Kb, F // G), cols.dtype) if need_w else None
        dcols = kernels.pooled_empty((N, K, P), cols.dtype) if need_x else None
        dx = np.empty((N, C, H, W), cols.dtype) if need_x else None
        wt = wb.reshape(G, F // G, Kb)[:, :, :Kg].transpose(0, 2, 1)
        # NOTE: with one output channel per group (depthwise) W[g].T @ g[n, g] is an outer
        # product, the same values as a broadcast multiply, which numpy ran ~2x faster.
        dcols_of = np.multiply if F == G else np.matmul

        def part(s):                  # one slice of the batch (conv_algorithms: the rule)
            n = s.stop - s.start
            if need_w:
                np.matmul(cols[s].reshape(n, G, Kb, P), g4[s].transpose(0, 1, 3, 2),
                          out=gwt[s])
            if need_x:
                dcols_of(wt, g4[s], out=dcols[s].reshape(n, G, Kg, P))
                kernels.col2im(dcols[s], C, H, W, HH, WW, stride, pad, Ho, Wo, out=dx[s])
        conv_algorithms.run(part, conv_algorithms.batch_slices(N, F, Kg, P))
        dw = db = None
        if need_w:
            dwb = gwt.sum(axis=0).transpose(0, 2, 1)
            dw = dwb[:, :, :Kg].reshape(wshape)
            db = dwb[:, :, Kg].reshape(F) if Kb > Kg else None
        if bias is not None and self.needs_grad(2):
            db = g4.sum(axis=(0, 3)).reshape(F)
        return dx, dw, db

    def twin(self, x, w, b):
        return conv2d_composite(x, w, b, *self.geometry[2:])

    def twin_inputs(self):
        """x, w, b as Tensors on the graph, their values rebuilt from cols, wb and bias."""
        cols, wb, bias = self.saved
        xshape, wshape, stride, pad, _ = self.geometry
        K, Kg = xshape[1] * int(np.prod(wshape[2:])), int(np.prod(wshape[1:]))
        x = _x_from_cols(cols[:, :K], xshape, wshape[2:], stride, pad)
        b = wb[:, Kg] if wb.shape[1] > Kg else bias
        b = None if b is None else self.graph_input(2, b)
        return self.graph_input(0, x), self.graph_input(1, wb[:, :Kg].reshape(wshape)), b


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


def conv2d_fused(x, w, b=None, stride=1, pad=0, groups=1):
    """The fused op. stride/pad: int or (h, w); w (F, C / groups, HH, WW). No shape checks
    here: `fused.conv2d` makes them."""
    stride, pad = geometry.conv2d_args(stride, pad)
    return Conv2dFn.apply(x, w, b, stride=stride, pad=pad, groups=int(groups))


def conv2d_composite(x, w, b=None, stride=1, pad=0, groups=1):
    """The twin: pad + HH*WW shifted strided slices stacked, viewed per group, + one batched
    matmul; the tape derives the gradient. stride/pad: int or (h, w); w (F, C / groups, HH,
    WW). No shape checks here: `fused.conv2d` makes them."""
    x = _tensor(x)
    stride, pad = geometry.conv2d_args(stride, pad)
    (sh, sw), (ph, pw), G = stride, pad, int(groups)
    F, Cg, HH, WW = w.shape
    N, _, Ho, Wo = geometry.conv2d_output_shape(x.shape, w.shape, stride, pad)
    if ph or pw:
        x = ops.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    shifted = [x[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
               for i in range(HH) for j in range(WW)]
    # (N, C, HH*WW, Ho, Wo) as (N, G, Cg*HH*WW, P): group g's rows are its own channels.
    cols = ops.reshape(ops.stack(shifted, axis=2), (N, G, Cg * HH * WW, Ho * Wo))
    wg = ops.reshape(w, (G, F // G, Cg * HH * WW))
    out = ops.reshape(ops.matmul(wg, cols), (N, F, Ho, Wo))
    if b is not None:
        out = out + ops.reshape(b, (1, F, 1, 1))
    return out
