"""Movement ops in PyTorch's and numpy's spellings: each normalises its arguments for one
primitive of movement.py (Reshape, Transpose, BroadcastTo, GetItem, Concatenate, Stack) or
composes a few, so none has a backward of its own.

`dim` arguments take negative values as in PyTorch; errors name the argument and the shape.
"""

from __future__ import annotations

import numpy as np

from ..tensor import _tensor
from .movement import BroadcastTo, Concatenate, GetItem, Reshape, Stack, Transpose


def _sizes(sizes):
    """f(2, 3) and f((2, 3)) alike: the varargs form PyTorch's Tensor methods take."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        return tuple(sizes[0])
    return tuple(sizes)


def _dim(dim, ndim, name="dim"):
    """`dim` as a non-negative int, or a ValueError naming it and the number of dims."""
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{name}={dim} is out of range for a tensor with {ndim} dimensions")
    return int(dim) % max(ndim, 1)


def reshape(x, *shape):
    """x with a new shape (one -1 infers a size): reshape(x, 2, -1) or reshape(x, (2, -1))."""
    return Reshape.apply(x, shape=_sizes(shape))


def view(x, *shape):
    """PyTorch's view: here the same as reshape (autotensor has no storage sharing to guard)."""
    return reshape(x, *shape)


def transpose(x, *axes):
    """transpose(x, d0, d1) swaps two dims (PyTorch); transpose(x, 2, 0, 1) or a tuple
    transpose(x, (1, 0)) is a full permutation, and no axes reverse them all (numpy).
    On a matrix, x.transpose(0, 1) therefore swaps, as in PyTorch."""
    ndim = _tensor(x).ndim
    # NOTE: (d, d) on a matrix is read as numpy's (invalid) permutation and raises, as before.
    if len(axes) == 2 and not (ndim == 2 and axes[0] % 2 == axes[1] % 2):
        d0, d1 = _dim(axes[0], ndim, "dim0"), _dim(axes[1], ndim, "dim1")
        perm = list(range(ndim))
        perm[d0], perm[d1] = d1, d0
        return Transpose.apply(x, axes=tuple(perm))
    axes = _sizes(axes)
    if axes:
        axes = normalize_axes_order(axes, ndim)
    return Transpose.apply(x, axes=axes or None)


def permute(x, *dims):
    """x with its dims reordered: permute(x, 2, 0, 1) -> shape (x.shape[2], x.shape[0], ...)."""
    dims = _sizes(dims)
    return Transpose.apply(x, axes=normalize_axes_order(dims, _tensor(x).ndim))


def normalize_axes_order(axes, ndim):
    """A permutation of range(ndim), negative axes allowed; clear error otherwise."""
    perm = tuple(int(a) % ndim if -ndim <= a < ndim else -1 for a in axes)
    if sorted(perm) != list(range(ndim)):
        raise ValueError(f"transpose axes {tuple(axes)} are not a permutation of {ndim} axes")
    return perm


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one; flatten(x, 1) maps (N, ...) to (N, D)."""
    x = _tensor(x)
    if x.ndim == 0:
        return reshape(x, 1)
    lo, hi = _dim(start_dim, x.ndim, "start_dim"), _dim(end_dim, x.ndim, "end_dim")
    if lo > hi:
        raise ValueError(f"flatten: start_dim={start_dim} comes after end_dim={end_dim} "
                         f"for shape {x.shape}")
    return reshape(x, x.shape[:lo] + (-1,) + x.shape[hi + 1:])


def unsqueeze(x, dim):
    """x with a new dim of size 1 at `dim` (-1 appends one)."""
    x = _tensor(x)
    d = _dim(dim, x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def squeeze(x, dim=None):
    """x without its size-1 dims (only those in `dim`, an int or a tuple, when given; a
    listed dim of another size stays, as in PyTorch)."""
    x = _tensor(x)
    if dim is None:
        dims = range(x.ndim)
    else:
        dims = {_dim(d, x.ndim) for d in ((dim,) if np.ndim(dim) == 0 else dim)}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def broadcast_to(x, shape):
    """x broadcast to `shape` by numpy's rules; the gradient is summed back."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return BroadcastTo.apply(x, shape=shape)


def expand(x, *sizes):
    """x broadcast to `sizes`, where -1 keeps a dim's size (PyTorch's expand); new dims go
    in front."""
    x = _tensor(x)
    sizes = _sizes(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes {sizes} for a tensor of shape {x.shape}")
    if any(n == -1 for n in sizes[:lead]):
        raise ValueError(f"expand: -1 is not allowed for a new leading dim, got {sizes}")
    return broadcast_to(x, tuple(x.shape[i - lead] if n == -1 else n
                                 for i, n in enumerate(sizes)))


def expand_as(x, other):
    """x broadcast to other's shape."""
    return broadcast_to(x, other.shape)


def repeat(x, *repeats):
    """x tiled `repeats[i]` times along dim i (PyTorch's repeat, numpy's tile); extra
    repeats add leading dims. A reshape and a broadcast: the gradient sums the copies."""
    x = _tensor(x)
    reps = _sizes(repeats)
    if len(reps) < x.ndim:
        raise ValueError(f"repeat: {len(reps)} repeats {reps} for a tensor of shape {x.shape} "
                         "(need at least one per dim)")
    shape = (1,) * (len(reps) - x.ndim) + x.shape
    # (s0, s1) -> (1, s0, 1, s1) -> (r0, s0, r1, s1) -> (r0 * s0, r1 * s1)
    spread = reshape(x, tuple(n for s in shape for n in (1, s)))
    tiled = broadcast_to(spread, tuple(n for r, s in zip(reps, shape) for n in (r, s)))
    return reshape(tiled, tuple(r * s for r, s in zip(reps, shape)))


def flip(x, *dims):
    """x reversed along `dims` (an int, several ints, or a tuple)."""
    x = _tensor(x)
    flipped = {_dim(d, x.ndim) for d in _sizes(dims)}
    return GetItem.apply(x, index=tuple(slice(None, None, -1) if i in flipped else slice(None)
                                        for i in range(x.ndim)))


def concatenate(tensors, axis=0, *, dim=None):
    """Join tensors along an existing axis (`dim` is PyTorch's name for it)."""
    return Concatenate.apply(*tensors, axis=axis if dim is None else dim)


def cat(tensors, dim=0):
    """PyTorch's name for concatenate."""
    return Concatenate.apply(*tensors, axis=dim)


def stack(tensors, axis=0, *, dim=None):
    """Join tensors along a new axis (`dim` is PyTorch's name for it)."""
    return Stack.apply(*tensors, axis=axis if dim is None else dim)


def split(x, split_size_or_sections, dim=0):
    """A tuple of pieces of x along `dim`: of size `split_size_or_sections` (an int; the last
    may be smaller) or of the listed sizes (they must add up to x.shape[dim])."""
    x = _tensor(x)
    d = _dim(dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        step = int(split_size_or_sections)
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - lo) for lo in range(0, n, step)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} add up to {sum(sizes)}, but dim {dim} "
                             f"of shape {x.shape} has size {n}")
    bounds = np.cumsum([0, *sizes])
    return tuple(GetItem.apply(x, index=(slice(None),) * d + (slice(lo, hi),))
                 for lo, hi in zip(bounds[:-1], bounds[1:]))


def chunk(x, chunks, dim=0):
    """x split into `chunks` pieces of ceil(size / chunks) along `dim` (fewer when they run
    out, as in PyTorch)."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    x = _tensor(x)
    n = x.shape[_dim(dim, x.ndim)]
    return split(x, max(-(-n // chunks), 1), dim)
