"""Reductions over axes (None, an int, or a tuple; negative axes allowed; keepdims)."""

from __future__ import annotations

import numpy as np

from ..function import Function, call, value
from .movement import BroadcastTo


def normalize_axes(axis, ndim):
    """`axis` as a sorted tuple of non-negative ints; None means every axis."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    if ndim == 0:           # like PyTorch: axis 0 / -1 of a scalar is allowed and reduces nothing
        return ()
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def _expand(g, axes, keepdims, in_shape):
    """Give the reduced axes back to `g` (size 1) so it broadcasts against the input."""
    if keepdims:
        return g
    return g.reshape(tuple(1 if i in axes else n for i, n in enumerate(in_shape)))


class Sum(Function):
    """z = sum of x over axes"""

    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        self.keepdims = keepdims
        self.in_shape = x.shape
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        return call(BroadcastTo, _expand(g, self.axes, self.keepdims, self.in_shape),
                    shape=self.in_shape)


class Max(Function):
    """z = max of x over axes (PyTorch's amax). NOTE: on ties the gradient is split evenly among
    the maxima, as PyTorch's amax and full max() do; `at.max(x, dim=d)` (values, indices)
    sends it to the first maximum instead (ops.max builds that from a gather)."""

    reduce = staticmethod(np.max)

    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        self.keepdims = keepdims
        out = self.reduce(x, axis=self.axes, keepdims=keepdims)
        self.saved = (x, out)
        return out

    def backward(self, g):
        x, out = (value(s) for s in self.saved)
        out = _expand(out, self.axes, self.keepdims, x.shape)
        winners = x == out
        if np.isnan(out).any():         # a NaN maximum: the NaNs share the gradient
            winners |= np.isnan(x) & np.isnan(out)
        share = winners / winners.sum(axis=self.axes, keepdims=True)
        return _expand(g, self.axes, self.keepdims, x.shape) * share.astype(x.dtype, copy=False)


class Min(Max):
    """z = min of x over axes (PyTorch's amin). NOTE: ties split the gradient evenly."""

    reduce = staticmethod(np.min)


class Cumsum(Function):
    """z[..., i] = x[..., 0] + ... + x[..., i] along `axis`  (a primitive: as a composite it
    would be a matmul with a triangular matrix, O(n**2) instead of O(n))"""

    def forward(self, x, axis):
        self.axis = axis
        return np.cumsum(x, axis=axis)

    def backward(self, g):
        # Each x[i] feeds z[i:], so dx[i] = g[i] + ... + g[n-1]: a cumsum of the reversed g.
        rev = (slice(None),) * (self.axis % g.ndim) + (slice(None, None, -1),)
        return call(Cumsum, g[rev], axis=self.axis)[rev]
