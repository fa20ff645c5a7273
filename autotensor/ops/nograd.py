"""Ops without a gradient: their results are new tensors outside the graph (requires_grad is
False), as PyTorch's are (sign, floor and round have a zero gradient almost everywhere there;
here they simply cut the graph). Comparisons (<, ==, ...) are Tensor methods of the same kind.
"""

from __future__ import annotations

import builtins

import numpy as np

from ..tensor import Tensor, _data

NO_GRAD = ["sign", "floor", "round", "argmax", "argmin", "all", "any"]


def sign(x):
    """-1, 0 or 1 by the sign of each element (no gradient)."""
    return Tensor(np.sign(_data(x)))


def floor(x):
    """The largest integer <= each element, in x's dtype (no gradient)."""
    return Tensor(np.floor(_data(x)))


def round(x, decimals=0):  # noqa: A001 (PyTorch's name)
    """Each element rounded to `decimals` places, halves to even as in PyTorch (no gradient)."""
    return Tensor(np.round(_data(x), decimals))


def _reduce_args(dim, keepdim, axis, keepdims):
    if axis is not None:
        if dim is not None:
            raise TypeError(f"give axis= or dim=, not both (got axis={axis}, dim={dim})")
        dim = axis
    return dim, builtins.bool(keepdim if keepdims is None else keepdims)


def argmax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the largest value along `dim` (of the flattened x when dim is None); the first
    one on ties. int64, no gradient."""
    dim, keepdim = _reduce_args(dim, keepdim, axis, keepdims)
    return Tensor(np.argmax(_data(x), axis=dim, keepdims=keepdim).astype(np.int64))


def argmin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the smallest value along `dim`, as argmax."""
    dim, keepdim = _reduce_args(dim, keepdim, axis, keepdims)
    return Tensor(np.argmin(_data(x), axis=dim, keepdims=keepdim).astype(np.int64))


def all(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """True where every element along `dim` (every dim by default) is nonzero; no gradient."""
    dim, keepdim = _reduce_args(dim, keepdim, axis, keepdims)
    return Tensor(np.all(_data(x), axis=dim, keepdims=keepdim))


def any(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """True where some element along `dim` (every dim by default) is nonzero; no gradient."""
    dim, keepdim = _reduce_args(dim, keepdim, axis, keepdims)
    return Tensor(np.any(_data(x), axis=dim, keepdims=keepdim))
