"""Dilated and grouped 2-D convolutions over a plain conv core (a fused op or its twin).

Both are reductions to the plain case, so the core's rules serve every order:
- dilation: a conv with dilation (dh, dw) equals a plain conv whose kernel has dh-1 zero rows
  (dw-1 zero columns) between its taps. The zero-stuffed kernel is an `index_put` into zeros,
  so its gradient is the taps of the stuffed kernel's gradient. Cost: the GEMM runs over the
  dilated kernel's dh*(HH-1)+1 x dw*(WW-1)+1 taps.
- groups: one core call per group on its slice of channels, concatenated on the channel axis
  (depthwise: one call per channel). Bias is added once, after the concatenation.
See docs/fused_ops.md ("Dilation and groups").
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..tensor import _data, _tensor


def dilate_kernel(w, dilation):
    """w (A, B, HH, WW) with dilation-1 zeros between its taps: (A, B, dh*(HH-1)+1, ...)."""
    if tuple(dilation) == (1, 1):
        return w
    (dh, dw), (a, b, hh, ww) = dilation, np.shape(_data(w))
    zeros = np.zeros((a, b, dh * (hh - 1) + 1, dw * (ww - 1) + 1), dtype=_data(w).dtype)
    return ops.index_put(zeros, (slice(None), slice(None), slice(None, None, dh),
                                 slice(None, None, dw)), w)


def grouped(core, x, w, b, groups, **geometry):
    """core(x_g, w_g, None, **geometry) for each group g, concatenated on axis 1, plus b.

    x (N, C, H, W) and w split into `groups` equal slices along x's axis 1 and w's axis 0:
    conv2d's w (F, C/groups, ...) and conv_transpose2d's w (C, F/groups, ...) alike.
    """
    if groups == 1:
        return core(x, w, b, **geometry)
    x = _tensor(x)
    cg, wg = x.shape[1] // groups, np.shape(_data(w))[0] // groups
    outs = [core(x[:, i * cg:(i + 1) * cg], w[i * wg:(i + 1) * wg], None, **geometry)
            for i in range(groups)]
    out = ops.concatenate(outs, axis=1)
    return out if b is None else out + ops.reshape(b, (1, -1, 1, 1))
