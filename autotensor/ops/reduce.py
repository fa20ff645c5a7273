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
    """z = max of x over axes. NOTE: on ties the whole gradient goes to the first maximum
    (in C order over the reduced axes), like np.argmax; PyTorch's amax splits it evenly."""

    pick = staticmethod(np.argmax)
    reduce = staticmethod(np.max)

    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        self.keepdims = keepdims
        self.saved = x
        return self.reduce(x, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        x = value(self.saved)
        return _expand(g, self.axes, self.keepdims, x.shape) * _first_pick_mask(
            x, self.axes, self.pick)


class Min(Max):
    """z = min of x over axes. NOTE: on ties the gradient goes to the first minimum."""

    pick = staticmethod(np.argmin)
    reduce = staticmethod(np.min)


def _first_pick_mask(x, axes, pick):
    """Boolean mask of x's shape, True at the single element `pick` selects per reduced slice."""
    ndim = x.ndim
    if ndim == 0:
        return np.ones((), dtype=bool)
    tail = tuple(range(ndim - len(axes), ndim))
    moved = np.moveaxis(x, axes, tail)
    flat = moved.reshape(moved.shape[:ndim - len(axes)] + (-1,))
    idx = pick(flat, axis=-1)[..., None]
    mask = np.zeros(flat.shape, dtype=bool)
    np.put_along_axis(mask, idx, True, axis=-1)
    return np.moveaxis(mask.reshape(moved.shape), tail, axes)
