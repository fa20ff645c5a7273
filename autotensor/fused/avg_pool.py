"""2-D average pooling and adaptive average pooling, composed of primitive ops.

Both are linear in x, so no fused op is needed: the tape derives their gradients (to any order)
from a sum of strided slices and a matmul. Window sizes and divisors are PyTorch's, from
`geometry` (`avg_pool_divisor`, `adaptive_windows`).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..tensor import _tensor
from . import geometry
from .pool import _padded, windows


def avg_pool2d(x, kernel, stride, pad, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """The mean of each window of x (N, C, H, W), zero-padded by `pad`; every argument a
    checked pair. The divisor counts the padding (count_include_pad) or only real pixels,
    and windows that ceil_mode lets hang past the padding count only what they cover."""
    x = _tensor(x)
    H, W = x.shape[2:]
    total = ops.sum(windows(_padded(x, kernel, stride, pad, (1, 1), ceil_mode, 0.0), kernel,
                            stride, (1, 1)), axis=-1)
    if divisor_override is not None:
        return total / float(divisor_override)
    dh, dw = (geometry.avg_pool_divisor(n, k, s, p, o, count_include_pad)
              for n, k, s, p, o in zip((H, W), kernel, stride, pad, total.shape[2:]))
    return total / np.outer(dh, dw).astype(x.dtype)


def _averaging(size, out, dtype):
    """(out, size): row i averages PyTorch's adaptive window i."""
    a = np.zeros((out, size), dtype=dtype)
    for i, (s, e) in enumerate(geometry.adaptive_windows(size, out)):
        a[i, s:e] = 1.0 / (e - s)
    return a


def adaptive_avg_pool2d(x, output_size):
    """PyTorch's adaptive average pooling of x (N, C, H, W) to output_size (a checked pair):
    separable, so it is A_h @ x @ A_w.T with A the averaging matrices of the windows."""
    x = _tensor(x)
    H, W = x.shape[2:]
    ah = _averaging(H, output_size[0], x.dtype)
    aw = _averaging(W, output_size[1], x.dtype)
    return ops.matmul(ops.matmul(ah, x), aw.T)
