"""Indexing ops in PyTorch's spellings, each one call of a primitive: GetItem (gather,
index_select), IndexPut (scatter_add) or Where (masked_fill, tril, triu). Their gradients are
those primitives' rules, differentiable again.

Integer indices and boolean masks may be ndarrays or Tensors; they carry no gradient.
"""

from __future__ import annotations

import numpy as np

from ..tensor import _data, _tensor
from .elementwise import Where
from .movement import GetItem, IndexPut
from .shape import _dim


def _int_index(index, name):
    index = np.asarray(_data(index))
    if index.dtype.kind not in "iu":
        raise TypeError(f"{name}: index must hold integers, got dtype {index.dtype}")
    return index


def _along(dim, index, shape, name):
    """The numpy index tuple of out[i][j][k] = x[i][index[i][j][k]][k] (for dim=1): `index`
    along `dim`, each other dim's own position. index.shape must fit inside `shape` except
    along `dim`."""
    if index.ndim != len(shape):
        raise ValueError(f"{name}: index has {index.ndim} dims, input has {len(shape)} "
                         f"(shapes {index.shape} and {shape})")
    d = _dim(dim, len(shape))
    if any(i != d and m > n for i, (m, n) in enumerate(zip(index.shape, shape))):
        raise ValueError(f"{name}: index of shape {index.shape} is larger than the input "
                         f"{shape} outside dim {dim}")
    return tuple(index if i == d else
                 np.arange(m).reshape((-1,) + (1,) * (index.ndim - i - 1))
                 for i, m in enumerate(index.shape))


def gather(x, dim, index):
    """out[i][j] = x[i][index[i][j]] for dim=1: values picked along `dim` (torch.gather);
    out has index's shape. The gradient adds back into the picked places."""
    x = _tensor(x)
    index = _int_index(index, "gather")
    return GetItem.apply(x, index=_along(dim, index, x.shape, "gather"))


def scatter_add(x, dim, index, src):
    """A copy of x with src[i][j] added at x[i][index[i][j]] for dim=1 (torch.scatter_add);
    repeated indices add up. Only src's leading index.shape block is used, as in PyTorch."""
    x = _tensor(x)
    index = _int_index(index, "scatter_add")
    where_to = _along(dim, index, x.shape, "scatter_add")
    src = _tensor(src)
    if src.ndim != index.ndim or any(m > n for m, n in zip(index.shape, src.shape)):
        raise ValueError(f"scatter_add: src of shape {src.shape} is smaller than index "
                         f"{index.shape}")
    if src.shape != index.shape:
        src = GetItem.apply(src, index=tuple(slice(0, m) for m in index.shape))
    return IndexPut.apply(x, src, index=where_to, accumulate=True)


def index_select(x, dim, index):
    """The slices of x at the positions `index` (1-D integers) along `dim`."""
    x = _tensor(x)
    index = _int_index(index, "index_select")
    if index.ndim > 1:
        raise ValueError(f"index_select: index must be 1-D, got shape {index.shape}")
    return GetItem.apply(x, index=(slice(None),) * _dim(dim, x.ndim) + (index,))


def masked_fill(x, mask, value):
    """x with `value` where `mask` (bool, broadcast against x) is True; the gradient reaches x
    where mask is False, and `value` when it is a Tensor."""
    mask = np.asarray(_data(mask))
    if mask.dtype != bool:
        raise TypeError(f"masked_fill: mask must be boolean, got dtype {mask.dtype}")
    return Where.apply(mask, value, x)


def _triangle(x, keep, name):
    x = _tensor(x)
    if x.ndim < 2:
        raise ValueError(f"{name}: needs a tensor of at least 2 dims, got shape {x.shape}")
    return Where.apply(keep(*x.shape[-2:]), x, np.zeros((), x.dtype))


def tril(x, diagonal=0):
    """x with the entries above the `diagonal`-th diagonal zeroed (over the last two dims)."""
    return _triangle(x, lambda n, m: np.tri(n, m, diagonal, dtype=bool), "tril")


def triu(x, diagonal=0):
    """x with the entries below the `diagonal`-th diagonal zeroed (over the last two dims)."""
    return _triangle(x, lambda n, m: ~np.tri(n, m, diagonal - 1, dtype=bool), "triu")
