"""Ops that move, select or join elements without arithmetic."""

from __future__ import annotations

import numpy as np

from ..function import Function, call


class Reshape(Function):
    """z = x viewed with a new shape"""

    def forward(self, x, shape):
        self.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape {x.shape} ({x.size} elements) into {shape}") \
                from None

    def backward(self, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    """z = x with its axes permuted (reversed when `axes` is None)"""

    def forward(self, x, axes=None):
        self.axes = tuple(reversed(range(x.ndim))) if axes is None else axes
        return x.transpose(self.axes)

    def backward(self, g):
        return g.transpose(tuple(int(a) for a in np.argsort(self.axes)))


class BroadcastTo(Function):
    """z = x broadcast to `shape` (numpy's rules; a read-only view)"""

    def forward(self, x, shape):
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"cannot broadcast shape {np.shape(x)} to {tuple(shape)}") from None

    def backward(self, g):
        return g                    # the engine sums it back to x's shape (unbroadcast)


class GetItem(Function):
    """z = x[index]  (slices, ints, None, Ellipsis, int arrays, boolean masks).

    Repeated integer indices accumulate in backward (np.add.at), as a sum should.
    """

    def forward(self, x, index):
        self.index = index
        self.in_shape = x.shape
        self.in_dtype = x.dtype
        return x[index]

    def backward(self, g):
        zeros = np.zeros(self.in_shape, dtype=np.result_type(self.in_dtype, g.dtype))
        return call(IndexPut, zeros, g, index=self.index, accumulate=True)


class IndexPut(Function):
    """z = x with z[index] = values (accumulate=False) or z[index] += values (True), where
    `index` is anything x[index] takes. Repeated indices accumulate with accumulate=True;
    without it the last write wins (and each repeat still receives the gradient)."""

    def forward(self, x, values, index, accumulate=False):
        self.index = index
        self.accumulate = accumulate
        out = np.array(x, dtype=np.result_type(x, values))      # x itself is never written
        if accumulate and _has_int_array(index):
            np.add.at(out, _bool_masks_to_ints(index), values)
        elif accumulate:            # basic slicing or masks: each element is picked once
            out[index] += values
        else:
            out[index] = values
        return out

    def backward(self, g):
        gx = g if self.accumulate else call(IndexPut, g, 0.0, index=self.index)
        return gx, g[self.index]


def _as_tuple(index):
    return index if isinstance(index, tuple) else (index,)


def _has_int_array(index):
    return any(isinstance(i, (list, np.ndarray)) and np.asarray(i).dtype != bool
               for i in _as_tuple(index))


def _bool_masks_to_ints(index):
    """np.add.at takes integer arrays only: a k-dim mask becomes its k nonzero() arrays."""
    out = []
    for i in _as_tuple(index):
        if isinstance(i, (list, np.ndarray)) and np.asarray(i).dtype == bool:
            out.extend(np.nonzero(i))
        else:
            out.append(i)
    return tuple(out)


class Concatenate(Function):
    """z = [x1, x2, ...] joined along `axis`"""

    def forward(self, *xs, axis=0):
        self.axis = axis
        self.splits = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=axis)

    def backward(self, g):
        axis = self.axis % g.ndim
        bounds = [0, *self.splits, g.shape[axis]]
        return tuple(g[(slice(None),) * axis + (slice(lo, hi),)]
                     for lo, hi in zip(bounds[:-1], bounds[1:]))


class Stack(Function):
    """z = [x1, x2, ...] stacked along a new `axis`"""

    def forward(self, *xs, axis=0):
        out = np.stack(xs, axis=axis)
        self.axis, self.n = axis % out.ndim, len(xs)
        return out

    def backward(self, g):
        return tuple(g[(slice(None),) * self.axis + (i,)] for i in range(self.n))


class Unbind(Function):
    """z_0, ..., z_{n-1} = the slices x[i] along `axis`, as one node with n outputs.

    Backward stacks the n gradients into one array: n separate GetItems would each fill an
    x-sized array of zeros (an RNN's time steps: quadratic in the sequence length).
    """

    def forward(self, x, axis=0):
        self.axis = axis
        return tuple(np.moveaxis(x, axis, 0))          # views, as x[i] is

    def backward(self, *gs):
        return call(Stack, *gs, axis=self.axis)


class Pad(Function):
    """z = x padded with a constant; `pad_width` as in np.pad"""

    def forward(self, x, pad_width, value=0.0):
        widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (x.ndim, 2))
        if (widths < 0).any():
            raise ValueError(f"pad widths must be >= 0, got {pad_width}")
        self.inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return np.pad(x, widths, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.inner]
