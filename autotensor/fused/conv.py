"""2-D convolution: the fused im2col + GEMM op and its composite twin.

Shapes: x (N, C, H, W), w (F, C, HH, WW), b (F,) or None, out (N, F, Ho, Wo) with
Ho = (H + 2*ph - HH) // sh + 1 (floor: windows that do not fit are dropped, as in PyTorch).
The derivation of the backward is in docs/fused_ops.md.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..function import Function
from ..tensor import Tensor
from . import kernels


class Conv2d(Function):
    """out[n, f] = sum_{c,i,j} w[f, c, i, j] * xpad[n, c, sh*ho + i, sw*wo + j] + b[f]

    Fused: im2col into pooled memory, then batched BLAS GEMMs. cols[n] is (K, P) with
    K = C*HH*WW and P = Ho*Wo, so every GEMM result is already in its final memory order:
    out[n] = W @ cols[n], dcols[n] = W.T @ g[n], dW = (sum_n cols[n] @ g[n].T).T.
    With a bias, cols gets a row of ones and W the column b: the GEMMs then add b and
    compute db = sum(g) with no extra pass over the output.
    """

    fused = True

    def forward(self, x, w, b, stride, pad):
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        Ho, Wo = out_size(H, W, HH, WW, stride, pad)
        dtype = np.result_type(x, w) if b is None else np.result_type(x, w, b)
        K = C * HH * WW
        wb = w.reshape(F, K) if b is None else np.concatenate([w.reshape(F, K), b[:, None]], 1)
        wb = wb.astype(dtype, copy=False)
        cols = kernels.pooled_empty((N, wb.shape[1], Ho * Wo), dtype)
        if b is not None:
            cols[:, K] = 1
        kernels.im2col(x.astype(dtype, copy=False), HH, WW, stride, pad, Ho, Wo, cols)
        out = np.matmul(wb, cols).reshape(N, F, Ho, Wo)
        # The columns are kept for dW (pooled memory: reused once this node is freed).
        self.saved = (cols, wb)
        self.geometry = (x.shape, w.shape, stride, pad)
        return out

    def backward(self, g):
        cols, wb = self.saved
        (N, C, H, W), wshape, stride, pad = self.geometry
        F, _, HH, WW = wshape
        Ho, Wo = g.shape[2:]
        K = C * HH * WW
        g3 = g.reshape(N, F, Ho * Wo).astype(cols.dtype, copy=False)
        dw = db = dx = None
        if self.needs_grad(1) or self.needs_grad(2):   # one GEMM per sample, summed
            # NOTE: computed transposed, cols[n] @ g[n].T: OpenBLAS ran this orientation
            # 25-40% faster than g[n] @ cols[n].T on the 7x7 and 64->64 cases.
            gwt = np.matmul(cols, g3.transpose(0, 2, 1),
                            out=kernels.pooled_empty((N, cols.shape[1], F), cols.dtype))
            dwb = gwt.sum(axis=0).T
            dw = dwb[:, :K].reshape(wshape)
            db = dwb[:, K] if wb.shape[1] > K else None
        if self.needs_grad(0):
            dcols = np.matmul(wb[:, :K].T, g3, out=kernels.pooled_empty((N, K, Ho * Wo),
                                                                         cols.dtype))
            dx = kernels.col2im(dcols, C, H, W, HH, WW, stride, pad, Ho, Wo)
        return dx, dw, db


def conv2d_fused(x, w, b=None, stride=1, pad=0):
    return Conv2d.apply(x, w, b, stride=pair(stride), pad=pair(pad))


def conv2d_composite(x, w, b=None, stride=1, pad=0):
    """The twin: pad + HH*WW shifted strided slices stacked + one matmul; the tape derives
    the gradient. No input checks here: `fused.conv2d` makes them."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    stride, pad = pair(stride), pair(pad)
    (sh, sw), (ph, pw) = stride, pad
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho, Wo = out_size(H, W, HH, WW, stride, pad)
    if ph or pw:
        x = ops.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    shifted = [x[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
               for i in range(HH) for j in range(WW)]
    cols = ops.reshape(ops.stack(shifted, axis=2), (N, C * HH * WW, Ho * Wo))
    out = ops.reshape(ops.matmul(ops.reshape(w, (F, C * HH * WW)), cols), (N, F, Ho, Wo))
    if b is not None:
        out = out + ops.reshape(b, (1, F, 1, 1))
    return out


def pair(v):
    """An int or an (h, w) pair as a tuple (h, w)."""
    return (int(v), int(v)) if np.ndim(v) == 0 else tuple(int(i) for i in v)


def out_size(H, W, HH, WW, stride, pad):
    """Output height and width; floor division drops windows that do not fit."""
    return (H + 2 * pad[0] - HH) // stride[0] + 1, (W + 2 * pad[1] - WW) // stride[1] + 1
