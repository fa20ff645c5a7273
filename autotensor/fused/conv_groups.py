"""Dilated 2-D convolutions over a plain conv core (a fused op or its twin); groups are native.

- dilation: a conv with dilation (dh, dw) equals a plain conv whose kernel has dh-1 zero rows
  (dw-1 zero columns) between its taps. The zero-stuffed kernel is an `index_put` into zeros,
  so its gradient is the taps of the stuffed kernel's gradient, and the core's rules serve at
  every order. Cost: the GEMM runs over the dilated kernel's dh*(HH-1)+1 x dw*(WW-1)+1 taps.
- groups are not reduced here: Conv2dFn and ConvTranspose2dFn (and their twins) take
  `groups` and run one batched GEMM over the groups, each group reading only its own
  C / groups channels, so a grouped conv costs 1/groups of the plain conv's GEMM work
  (depthwise: 1/C).
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
