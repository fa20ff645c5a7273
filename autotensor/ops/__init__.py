"""The public op functions (also reachable as `at.<name>` and as Tensor methods).

Primitives are `Function` classes in elementwise.py, reduce.py, movement.py and einsum.py. An op
that is one primitive on tensor arguments is bound to the primitive's `apply` (add = Add.apply);
the functions here, in shape.py (movement) and in index.py (gather, scatter_add, ...) normalise
arguments for one primitive or compose several; composites get their gradient from the tape and
have no backward of their own. nograd.py holds the ops without a gradient (sign, argmax, ...).
Tensor methods and operators call these, never the classes.

Reductions take numpy's names (axis=, keepdims=) and PyTorch's (dim=, keepdim=); docs/ops.md
lists every op with its forms and gradient notes.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from ..tensor import Tensor, _data, _tensor
from .einsum import einsum
from .elementwise import (
    Abs,
    Add,
    AsType,
    Clip,
    Clone,
    Cos,
    Div,
    Erf,
    Exp,
    Expm1,
    Log,
    Log1p,
    MatMul,
    Maximum,
    Minimum,
    Mul,
    Neg,
    Pow,
    Relu,
    Sigmoid,
    Sin,
    Sqrt,
    Sub,
    Tanh,
    Where,
)
from .index import gather, index_select, masked_fill, scatter_add, tril, triu
from .movement import GetItem, IndexPut, Pad
from .nograd import NO_GRAD, all, any, argmax, argmin, floor, round, sign  # noqa: A004, F401
from .reduce import Cumsum, Max, Min, Sum, normalize_axes
from .shape import (
    _dim,
    broadcast_to,
    cat,
    chunk,
    concatenate,
    expand,
    expand_as,
    flatten,
    flip,
    permute,
    repeat,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    unsqueeze,
    view,
)

# The differentiable public ops; autotensor/op_table.py must hold a row for each. The ops
# without a gradient are listed in NO_GRAD (nograd.py).
__all__ = [
    "add", "sub", "mul", "div", "pow", "matmul", "neg", "abs", "exp", "log", "sqrt", "tanh",
    "sigmoid", "relu", "clip", "clamp", "maximum", "minimum", "where", "sin", "cos", "log1p",
    "expm1", "erf", "outer", "einsum", "tril", "triu",
    "sum", "mean", "var", "std", "max", "min", "amax", "amin", "prod", "cumsum", "norm",
    "logsumexp", "softmax", "log_softmax",
    "reshape", "view", "transpose", "permute", "flatten", "unsqueeze", "squeeze",
    "broadcast_to", "expand", "expand_as", "repeat", "flip", "concatenate", "cat", "stack",
    "split", "chunk", "getitem", "gather", "scatter_add", "index_select", "masked_fill",
    "index_put", "pad", "astype", "clone",
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
clone = Clone.apply
sin = Sin.apply
cos = Cos.apply
log1p = Log1p.apply
expm1 = Expm1.apply
erf = Erf.apply


def where(condition, input=None, other=None):  # noqa: A002 (PyTorch's argument names)
    """input where `condition` (bool array or tensor, not differentiable) else other.
    where(condition) alone is nonzero(condition): a tuple of index tensors, as in PyTorch."""
    if input is None and other is None:
        return tuple(Tensor(i) for i in np.nonzero(_data(condition)))
    return Where.apply(condition, input, other)


def clip(x, lo=None, hi=None, *, min=None, max=None):  # noqa: A002
    """x limited to [lo, hi] (PyTorch's min=/max= are the same bounds)."""
    lo = min if lo is None else lo
    hi = max if hi is None else hi
    if lo is None and hi is None:
        raise ValueError("clip needs lo, hi or both")
    return Clip.apply(x, lo=_data(lo), hi=_data(hi))


def clamp(x, min=None, max=None):  # noqa: A002
    """PyTorch's name for clip: x limited to [min, max]."""
    return clip(x, min, max)


def outer(x, y):
    """The outer product of two vectors: out[i, j] = x[i] * y[j]."""
    x, y = _tensor(x), _tensor(y)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"outer: needs two 1-D tensors, got shapes {x.shape} and {y.shape}")
    return reshape(x, -1, 1) * reshape(y, 1, -1)


# ---- reductions ----------------------------------------------------------------------------------
def _axes(axis, keepdims, dim, keepdim, default=None):
    """(axis, keepdims) from numpy's names or PyTorch's (dim=, keepdim=), never both."""
    if dim is not None:
        if axis != default:
            raise TypeError(f"give axis= or dim=, not both (got axis={axis}, dim={dim})")
        axis = dim
    return axis, bool(keepdims if keepdim is None else keepdim)


def _count(x, axis):
    return math.prod(x.shape[a] for a in normalize_axes(axis, x.ndim))


def sum(x, axis=None, keepdims=False, *, dim=None, keepdim=None):  # noqa: A001
    axis, keepdims = _axes(axis, keepdims, dim, keepdim)
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """sum(x) / n over the axes. NOTE: over zero elements it is nan, as in PyTorch."""
    axis, keepdims = _axes(axis, keepdims, dim, keepdim)
    x = _tensor(x)
    n = _count(x, axis)
    return sum(x, axis, keepdims) * (1.0 / n if n else float("nan"))


# torch.return_types.max / min: (values, indices), also by name.
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


def max(x, axis=None, keepdims=False, *, dim=None, keepdim=None):  # noqa: A001
    """The largest value over `axis` (a Tensor; ties split the gradient evenly, as PyTorch's
    amax). With dim= (one int): (values, indices), as PyTorch's max(dim), the gradient going
    to the first maximum. max(x, other_tensor) is maximum(x, other), as torch.max."""
    if isinstance(axis, Tensor):
        return maximum(x, axis)
    if dim is not None:
        _axes(axis, keepdims, dim, keepdim)             # refuses axis= and dim= together
        return _pick(x, dim, keepdims if keepdim is None else keepdim, np.argmax, MaxResult)
    return Max.apply(x, axis=axis, keepdims=keepdims if keepdim is None else keepdim)


def min(x, axis=None, keepdims=False, *, dim=None, keepdim=None):  # noqa: A001
    """The smallest value: as `max`, with (values, indices) for dim=."""
    if isinstance(axis, Tensor):
        return minimum(x, axis)
    if dim is not None:
        _axes(axis, keepdims, dim, keepdim)             # refuses axis= and dim= together
        return _pick(x, dim, keepdims if keepdim is None else keepdim, np.argmin, MinResult)
    return Min.apply(x, axis=axis, keepdims=keepdims if keepdim is None else keepdim)


def amax(x, dim=(), keepdim=False):
    """The largest value over `dim` (an int or a tuple; () = every dim); ties split evenly."""
    return Max.apply(x, axis=None if dim == () else dim, keepdims=keepdim)


def amin(x, dim=(), keepdim=False):
    """The smallest value over `dim` (an int or a tuple; () = every dim); ties split evenly."""
    return Min.apply(x, axis=None if dim == () else dim, keepdims=keepdim)


def _pick(x, dim, keepdim, arg, result):
    """(values, indices) of the extremum `arg` picks along one dim: a gather at the indices,
    so the gradient goes to the first extremum, as in PyTorch."""
    x = _tensor(x)
    if not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{result.__name__}(dim=...) takes one int, got {dim!r}; use "
                        f"a{result.__name__}(x, dim) for several dims")
    if x.ndim == 0:
        return result(x, Tensor(np.zeros((), dtype=np.int64)))
    d = _dim(dim, x.ndim)
    idx = arg(x.data, axis=d, keepdims=True)
    values = gather(x, d, idx)
    if not keepdim:
        values, idx = squeeze(values, d), np.squeeze(idx, d)
    return result(values, Tensor(idx.astype(np.int64, copy=False)))


def _correction(ddof, unbiased, correction, torch_style):
    given = [c for c in (ddof, unbiased, correction) if c is not None]
    if len(given) > 1:
        raise TypeError("give one of ddof=, unbiased=, correction=")
    if unbiased is not None:
        return 1 if unbiased else 0
    if given:
        return given[0]
    return 1 if torch_style else 0


def var(x, axis=None, keepdims=False, *, ddof=None, dim=None, keepdim=None, unbiased=None,
        correction=None):
    """sum((x - mean(x))**2) / (n - correction) over the axes.

    NOTE: the default correction is 0 (biased, numpy's and the course's batch norm) for
    var(x), var(x, axis) and var(x, axis=...); it is 1 (unbiased, PyTorch's default) when the
    call uses PyTorch's names dim= or keepdim=. ddof=, unbiased= or correction= set it.
    """
    c = _correction(ddof, unbiased, correction, dim is not None or keepdim is not None)
    axis, keepdims = _axes(axis, keepdims, dim, keepdim)
    x = _tensor(x)
    d = x - mean(x, axis, keepdims=True)
    n = _count(x, axis)
    if c == 0:          # the course's var, node for node: mean of the squared deviations
        return mean(d * d, axis, keepdims)
    return sum(d * d, axis, keepdims) * (1.0 / (n - c) if n > c else float("nan"))


def std(x, axis=None, keepdims=False, *, ddof=None, dim=None, keepdim=None, unbiased=None,
        correction=None):
    """sqrt(var(x)), with var's correction rule. Its gradient is 0 where std is 0 (PyTorch)."""
    return _sqrt0(var(x, axis, keepdims, ddof=ddof, dim=dim, keepdim=keepdim,
                      unbiased=unbiased, correction=correction))


def _sqrt0(s):
    """sqrt(s) whose gradient is 0, not inf * 0 = nan, where s == 0 (PyTorch's norm and std)."""
    zero = s.data == 0
    if not np.any(zero):
        return sqrt(s)
    return where(zero, 0.0, sqrt(where(zero, 1.0, s)))


def prod(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """The product over the axes, as a tree of pairwise multiplies (log2(n) Mul nodes): exact
    with zeros in x, where the textbook gradient out / x would divide by zero."""
    axis, keepdims = _axes(axis, keepdims, dim, keepdim)
    x = _tensor(x)
    axes = normalize_axes(axis, x.ndim)
    kept = tuple(a for a in range(x.ndim) if a not in axes)
    out_shape = tuple(x.shape[a] for a in kept)
    y = reshape(permute(x, kept + axes) if x.ndim > 1 else x, out_shape + (-1,))
    if y.shape[-1] == 0:                      # the empty product is 1
        y = sum(y, -1, keepdims=True) + 1
    while y.shape[-1] > 1:
        if y.shape[-1] % 2:
            y = concatenate([y, np.ones(out_shape + (1,), x.dtype)], axis=-1)
        y = y[..., 0::2] * y[..., 1::2]
    keep_shape = tuple(1 if a in axes else n for a, n in enumerate(x.shape))
    return reshape(y, keep_shape if keepdims else out_shape)


def cumsum(x, dim=None, *, axis=None):
    """Running sums along `dim` (numpy: with no axis, over the flattened x)."""
    x = _tensor(x)
    dim = axis if dim is None else dim
    if dim is None or x.ndim == 0:
        flat = Cumsum.apply(reshape(x, -1), axis=0)
        return flat if dim is None else reshape(flat, x.shape)
    return Cumsum.apply(x, axis=_dim(dim, x.ndim))


def norm(x, p="fro", dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The p-norm over `dim` (every dim by default): p = 'fro' or 2 (Euclidean), 1, inf, -inf
    or any p > 0; (sum |x|**p)**(1/p). The gradient at a zero norm is 0, as in PyTorch."""
    dim, keepdim = _axes(dim, keepdim, axis, keepdims)
    x = _tensor(x)
    if p in ("fro", 2):
        return _sqrt0(sum(x * x, dim, keepdim))
    if p == 1:
        return sum(abs(x), dim, keepdim)
    if p in (math.inf, -math.inf):
        return (Max if p > 0 else Min).apply(abs(x), axis=dim, keepdims=keepdim)
    if isinstance(p, str) or not p > 0:
        raise ValueError(f"norm: p={p!r} is not supported (use 'fro', inf, -inf or p > 0)")
    s = sum(abs(x) ** p, dim, keepdim)
    zero = s.data == 0
    if not np.any(zero):
        return s ** (1.0 / p)
    return where(zero, 0.0, where(zero, 1.0, s) ** (1.0 / p))


def logsumexp(x, axis=-1, keepdims=False, *, dim=None, keepdim=None):
    """log(sum(exp(x))) along `axis`, stable for logits of any size."""
    axis, keepdims = _axes(axis, keepdims, dim, keepdim, default=-1)
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


def log_softmax(x, axis=-1, *, dim=None):
    """x - logsumexp(x): log-probabilities along `axis` (or dim), stable for logits of +-1000."""
    axis, _ = _axes(axis, False, dim, None, default=-1)
    return x - logsumexp(x, axis, keepdims=True)


def softmax(x, axis=-1, *, dim=None):
    """exp(log_softmax(x)): probabilities along `axis` (or dim)."""
    return exp(log_softmax(x, axis, dim=dim))


# ---- indexing and the rest -----------------------------------------------------------------------
def getitem(x, index):
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(_data(i) for i in index)
    return GetItem.apply(x, index=index)


def index_put(x, indices, values, accumulate=False):
    """A copy of x with x[indices] = values (accumulate=False) or += values (True), as
    torch.index_put; `indices` is anything x[indices] accepts (ints, slices, arrays, masks)."""
    if isinstance(indices, Tensor):
        indices = indices.data
    elif isinstance(indices, tuple):
        indices = tuple(_data(i) for i in indices)
    return IndexPut.apply(x, values, index=indices, accumulate=bool(accumulate))


def pad(x, pad_width, value=0.0):
    """Constant padding; `pad_width` as in np.pad (int, (before, after), or per axis)."""
    return Pad.apply(x, pad_width=pad_width, value=value)


def astype(x, dtype):
    """x converted to `dtype`; a cast to a non-float dtype leaves the graph (no gradient)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):      # integer tensors never require grad
        return Tensor(_tensor(x).data.astype(dtype))
    return AsType.apply(x, dtype=dtype)


# ---- unbind (issue 13: an RNN's time steps as one node) -----------------------------------------
from .movement import Unbind  # noqa: E402

__all__ += ["unbind"]


def unbind(x, dim=0):
    """The tuple of x's slices along `dim` (each without that dim), as torch.unbind. One node:
    backward stacks the slices' gradients into one array."""
    x = _tensor(x)
    if x.ndim == 0:
        raise ValueError("unbind: a 0-d tensor has no dim to unbind")
    d = _dim(dim, x.ndim)
    return () if x.shape[d] == 0 else Unbind.apply(x, axis=d)
