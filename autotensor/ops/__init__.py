"""The public op functions (also reachable as `at.<name>` and as Tensor methods).

Primitives are `Function` classes in elementwise.py, reduce.py and movement.py. An op that is
one primitive on tensor arguments is bound to the primitive's `apply` (add = Add.apply); the
functions below normalise arguments for one primitive or compose several; composites get
their gradient from the tape and have no backward of their own. Tensor methods and operators
call these, never the classes.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor, _data, _tensor
from .elementwise import (
    Abs,
    Add,
    AsType,
    Clip,
    Clone,
    Div,
    Exp,
    Log,
    MatMul,
    Maximum,
    Minimum,
    Mul,
    Neg,
    Pow,
    Relu,
    Sigmoid,
    Sqrt,
    Sub,
    Tanh,
    Where,
)
from .movement import BroadcastTo, Concatenate, GetItem, IndexPut, Pad, Reshape, Stack, Transpose
from .reduce import Max, Min, Sum, normalize_axes

# The differentiable public ops; autotensor/op_table.py must hold a row for each.
__all__ = [
    "add", "sub", "mul", "div", "pow", "matmul", "neg", "abs", "exp", "log", "sqrt", "tanh",
    "sigmoid", "relu", "clip", "maximum", "minimum", "where", "sum", "mean", "var", "max", "min",
    "reshape", "transpose", "flatten", "getitem", "concatenate", "stack", "pad", "softmax",
    "log_softmax", "logsumexp", "astype", "clone", "broadcast_to", "index_put",
]


# Ops that are exactly one primitive on tensor arguments ARE that primitive's `apply`: no wrapper
# frame between a Tensor operator and the tape (the per-op overhead is the engine's hot path).
# Each class's docstring states its math: Add is z = x + y, Relu is z = max(x, 0), ...
add = Add.apply
sub = Sub.apply
mul = Mul.apply
div = Div.apply
pow = Pow.apply  # noqa: A001 (mirrors the operator name, as numpy does)
matmul = MatMul.apply
neg = Neg.apply
abs = Abs.apply  # noqa: A001
exp = Exp.apply
log = Log.apply
sqrt = Sqrt.apply
tanh = Tanh.apply
sigmoid = Sigmoid.apply
relu = Relu.apply
maximum = Maximum.apply
minimum = Minimum.apply
where = Where.apply      # where(cond, x, y): x where cond (bool array or tensor) else y
clone = Clone.apply


def clip(x, lo=None, hi=None):
    if lo is None and hi is None:
        raise ValueError("clip needs lo, hi or both")
    return Clip.apply(x, lo=lo, hi=hi)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return Max.apply(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return Min.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    """sum(x) / n over the axes. NOTE: over zero elements it is nan, as in PyTorch."""
    x = _tensor(x)
    n = int(np.prod([x.shape[a] for a in normalize_axes(axis, x.ndim)]))
    return sum(x, axis, keepdims) * (1.0 / n if n else float("nan"))


def var(x, axis=None, keepdims=False):
    """Biased variance mean((x - mean(x))**2), as batch norm and the course use (ddof=0)."""
    x = _tensor(x)
    d = x - mean(x, axis, keepdims=True)
    return mean(d * d, axis, keepdims)


def reshape(x, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(x, shape=shape)


def transpose(x, *axes):
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if axes:
        axes = normalize_axes_order(axes, _tensor(x).ndim)
    return Transpose.apply(x, axes=axes or None)


def normalize_axes_order(axes, ndim):
    """A permutation of range(ndim), negative axes allowed; clear error otherwise."""
    perm = tuple(int(a) % ndim if -ndim <= a < ndim else -1 for a in axes)
    if sorted(perm) != list(range(ndim)):
        raise ValueError(f"transpose axes {tuple(axes)} are not a permutation of {ndim} axes")
    return perm


def flatten(x, start_dim=0):
    """Merge the axes from `start_dim` on into one; flatten(x, 1) maps (N, ...) to (N, D)."""
    x = _tensor(x)
    return reshape(x, x.shape[:start_dim] + (-1,))


def getitem(x, index):
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(_data(i) for i in index)
    return GetItem.apply(x, index=index)


def broadcast_to(x, shape):
    """x broadcast to `shape` by numpy's rules; the gradient is summed back."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return BroadcastTo.apply(x, shape=shape)


def index_put(x, indices, values, accumulate=False):
    """A copy of x with x[indices] = values (accumulate=False) or += values (True), as
    torch.index_put; `indices` is anything x[indices] accepts (ints, slices, arrays, masks)."""
    if isinstance(indices, Tensor):
        indices = indices.data
    elif isinstance(indices, tuple):
        indices = tuple(_data(i) for i in indices)
    return IndexPut.apply(x, values, index=indices, accumulate=bool(accumulate))


def concatenate(tensors, axis=0):
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    return Stack.apply(*tensors, axis=axis)


def pad(x, pad_width, value=0.0):
    """Constant padding; `pad_width` as in np.pad (int, (before, after), or per axis)."""
    return Pad.apply(x, pad_width=pad_width, value=value)


def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) along `axis`, stable for logits of any size."""
    x = _tensor(x)
    try:
        normalize_axes(axis, x.ndim)
    except ValueError as e:
        raise ValueError(f"logsumexp/softmax: input of shape {x.shape}: {e}") from None
    # NOTE: shifting by the (constant) max keeps exp() finite; the shift cancels in the
    # gradient, so treating it as a constant is exact.
    shift = np.max(x.data, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0)
    out = log(sum(exp(x - shift), axis, keepdims=True)) + shift
    return out if keepdims else reshape(out, np.squeeze(out.data, axis).shape)


def log_softmax(x, axis=-1):
    """x - logsumexp(x): log-probabilities along `axis`, stable for logits of +-1000."""
    return x - logsumexp(x, axis, keepdims=True)


def softmax(x, axis=-1):
    """exp(log_softmax(x)): probabilities along `axis`."""
    return exp(log_softmax(x, axis))


def astype(x, dtype):
    """x converted to `dtype`; a cast to a non-float dtype leaves the graph (no gradient)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):      # integer tensors never require grad
        return Tensor(_tensor(x).data.astype(dtype))
    return AsType.apply(x, dtype=dtype)
