"""Dilated and grouped 2-D convolutions over a plain conv core (a fused op or its twin).

Both are reductions to the plain case, so the core's rules serve every order:
- dilation: a conv with dilation (dh, dw) equals a plain conv whose kernel has dh-1 zero rows
  (dw-1 zero columns) between its taps. The zero-stuffed kernel is an `index_put` into zeros,
  so its gradient is the taps of the stuffed kernel's gradient. Cost: the GEMM runs over the
  dilated kernel's dh*(HH-1)+1 x dw*(WW-1)+1 taps.
- groups: one plain conv whose kernel is block-diagonal over the channel groups (zeros
  between the blocks). One fused call whatever the group count, but the GEMM does `groups`
  times the necessary work (depthwise: C times); a per-group kernel would avoid that.
See docs/fused_ops.md ("Dilation and groups").
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..tensor import _data


def dilate_kernel(w, dilation):
    """w (A, B, HH, WW) with dilation-1 zeros between its taps: (A, B, dh*(HH-1)+1, ...)."""
    if tuple(dilation) == (1, 1):
        return w
    (dh, dw), (a, b, hh, ww) = dilation, np.shape(_data(w))
    zeros = np.zeros((a, b, dh * (hh - 1) + 1, dw * (ww - 1) + 1), dtype=_data(w).dtype)
    return ops.index_put(zeros, (slice(None), slice(None), slice(None, None, dh),
                                 slice(None, None, dw)), w)


def block_diagonal(w, groups):
    """w (A, B/groups, HH, WW) as the (A, B, HH, WW) kernel of one plain conv: row a keeps its
    taps in the channel block of its group a // (A/groups), zeros elsewhere (an index_put)."""
    a, bg, hh, ww = np.shape(_data(w))
    rows = np.arange(a)[:, None]
    cols = (rows // (a // groups)) * bg + np.arange(bg)
    zeros = np.zeros((a, bg * groups, hh, ww), dtype=_data(w).dtype)
    return ops.index_put(zeros, (rows, cols), w)


def grouped(core, x, w, b, groups, **geometry):
    """core(x, block_diagonal(w), b, **geometry): conv2d's w (F, C/groups, ...) and
    conv_transpose2d's w (C, F/groups, ...) alike. One fused call (the output stays the fused
    node, bias included), at `groups` times the plain GEMM's work."""
    return core(x, w if groups == 1 else block_diagonal(w, groups), b, **geometry)
