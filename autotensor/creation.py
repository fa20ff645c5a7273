"""Creating tensors, with PyTorch's names, signatures and rules.

    at.zeros(2, 3), at.ones((2, 3)), at.full((2, 3), 7.0), at.eye(3)
    at.arange(5), at.arange(0, 1, 0.25), at.linspace(0, 1, 5)
    at.rand(2, 3), at.randn(2, 3), at.randint(10, (4,)), at.randn_like(x)

Differences from PyTorch, on purpose: floating-point results default to float64 (the project's
default dtype; torch's is float32), and `generator=` takes a np.random.Generator. Random
functions draw from `generator` when given, else from the global generator of
`autotensor.random` (seeded by at.manual_seed). `dtype` takes anything np.dtype accepts.
See docs/ops.md ("Creating tensors").
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .random import generator_or_default
from .tensor import Tensor, _data

__all__ = ["zeros", "ones", "full", "arange", "linspace", "eye", "rand", "randn", "randint",
           "zeros_like", "ones_like", "full_like", "rand_like", "randn_like"]

_FLOAT = np.dtype(np.float64)          # the default floating-point dtype


# ---------------------------------------------------------------- argument checks

def _count(fn, name, value):
    """`value` as a Python int >= 0, else the error torch raises (TypeError, ValueError)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an integer, got {type(value).__name__} "
                        f"{value!r:.40}")
    if value < 0:
        raise ValueError(f"{fn}: {name} must be >= 0, got {value}")
    return int(value)


def _size(fn, size):
    """The shape from torch's two spellings, f(2, 3) and f((2, 3)) (a list works too)."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(_count(fn, "size", s) for s in size)


def _sequence_size(fn, size):
    """A shape that must be a tuple or list, as torch's full and randint require."""
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"{fn}: size must be a tuple of ints, e.g. (3,), got "
                        f"{type(size).__name__} {size!r:.40}")
    return _size(fn, (size,))


def _dtype(dtype, default=_FLOAT):
    return default if dtype is None else np.dtype(dtype)


def _float_dtype(fn, dtype, default=_FLOAT):
    dt = _dtype(dtype, default)
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"{fn}: dtype must be a floating-point type, got {dt}")
    return dt


def _real(fn, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not np.isfinite(value):
        raise ValueError(f"{fn}: {name} must be a finite real number, got {value!r:.40}")
    return value


def _scalar_dtype(value):
    """torch's dtype for a Python scalar: bool, int64, complex128, else the default float."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(bool)
    if isinstance(value, numbers.Integral):
        return np.dtype(np.int64)
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return np.dtype(np.complex128)
    return _FLOAT


def _new(data, requires_grad):
    return Tensor(data, requires_grad=requires_grad)


# ---------------------------------------------------------------- filled

def zeros(*size, dtype=None, requires_grad=False):
    """A tensor of zeros of shape `size`: `zeros(2, 3)` or `zeros((2, 3))`."""
    return _new(np.zeros(_size("zeros", size), _dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    """A tensor of ones of shape `size`: `ones(2, 3)` or `ones((2, 3))`."""
    return _new(np.ones(_size("ones", size), _dtype(dtype)), requires_grad)


def full(size, fill_value, *, dtype=None, requires_grad=False):
    """A tensor of shape `size` (a tuple) filled with `fill_value`.

    The dtype follows the value, as in torch: bool, int64 for an int, float64 for a float.
    """
    size = _sequence_size("full", size)
    fill_value = _data(fill_value)
    if isinstance(fill_value, np.ndarray):          # a 0-d tensor or array holds the value
        if fill_value.ndim:
            raise ValueError(f"full: fill_value must be a number, got an array of shape "
                             f"{fill_value.shape}")
        fill_value = fill_value.item()
    return _new(np.full(size, fill_value, _dtype(dtype, _scalar_dtype(fill_value))),
                requires_grad)


def eye(n, m=None, *, dtype=None, requires_grad=False):
    """The (n, m) identity matrix (m defaults to n): ones on the diagonal, zeros elsewhere."""
    n = _count("eye", "n", n)
    m = n if m is None else _count("eye", "m", m)
    return _new(np.eye(n, m, dtype=_dtype(dtype)), requires_grad)


# ---------------------------------------------------------------- ranges

def arange(start=0, end=None, step=1, *, dtype=None, requires_grad=False):
    """The values start, start + step, ... up to `end`, excluded: `arange(5)`, `arange(1, 4)`.

    int64 when start, end and step are all integers, float64 otherwise (torch's rule); the
    length is ceil((end - start) / step).
    """
    if end is None:
        start, end = 0, start
    for name, value in (("start", start), ("end", end), ("step", step)):
        _real("arange", name, value)
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(f"arange: end={end} lies on the wrong side of start={start} for "
                         f"step={step}")
    if all(isinstance(v, numbers.Integral) for v in (start, end, step)):
        values, default = np.arange(start, end, step), np.dtype(np.int64)
    else:
        # NOTE: start + i * step, as torch. np.arange adds i times (start + step) - start,
        # whose rounding error grows with i (2e-6 off after 1e5 steps of 0.1 from 1e6).
        values = start + step * np.arange(math.ceil((end - start) / step), dtype=np.float64)
        default = _FLOAT
    return _new(values.astype(_dtype(dtype, default), copy=False), requires_grad)


def linspace(start, end, steps, *, dtype=None, requires_grad=False):
    """`steps` evenly spaced values from `start` to `end`, both included."""
    start, end = _real("linspace", "start", start), _real("linspace", "end", end)
    steps = _count("linspace", "steps", steps)
    if steps == 1:
        return _new(np.array([start], _dtype(dtype)), requires_grad)
    i = np.arange(steps)
    step = (end - start) / (steps - 1)
    # NOTE: torch's formula: the first half counts up from start, the second half down from
    # end, so both endpoints are exact and the rounding is symmetric (np.linspace counts up
    # only, then overwrites the last value with end).
    values = np.where(i < steps // 2, start + step * i, end - step * (steps - 1 - i))
    return _new(values.astype(_dtype(dtype), copy=False), requires_grad)


# ---------------------------------------------------------------- random

def rand(*size, generator=None, dtype=None, requires_grad=False):
    """Samples from the uniform distribution on [0, 1), of shape `size`."""
    dt = _float_dtype("rand", dtype)
    data = generator_or_default(generator, "rand").random(_size("rand", size))
    return _new(data.astype(dt, copy=False), requires_grad)


def randn(*size, generator=None, dtype=None, requires_grad=False, rng=None):
    """Samples from the standard normal distribution, of shape `size`.

    `rng` is the older name of `generator`, kept for existing code (any object with a
    `standard_normal(shape)` method, e.g. a np.random.Generator).
    """
    dt = _float_dtype("randn", dtype)
    if rng is not None and generator is not None:
        raise TypeError("randn: pass generator= or rng= (its older name), not both")
    source = rng if rng is not None else generator_or_default(generator, "randn")
    return _new(source.standard_normal(_size("randn", size)).astype(dt, copy=False),
                requires_grad)


def randint(low=0, high=None, size=None, *, generator=None, dtype=None, requires_grad=False):
    """Integers drawn uniformly from [low, high): `randint(10, (3,))`, `randint(2, 5, (3,))`.

    int64 unless `dtype` says otherwise; `size` is a tuple, as in torch.
    """
    if size is None:                               # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:                             # randint(high, size=...)
        low, high = 0, low
    if size is None:
        raise TypeError("randint: missing the size tuple, e.g. randint(10, (3,))")
    size = _sequence_size("randint", size)
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"randint: {name} must be an integer, got {value!r:.40}")
    if low >= high:
        raise ValueError(f"randint: low must be less than high, got low={low}, high={high}")
    data = generator_or_default(generator, "randint").integers(low, high, size, np.int64)
    return _new(data.astype(_dtype(dtype, np.dtype(np.int64)), copy=False), requires_grad)


# ---------------------------------------------------------------- shaped like another tensor

def _like(input):
    """The array of a Tensor, ndarray or nested list whose shape and dtype are copied."""
    return np.asarray(_data(input))


def zeros_like(input, *, dtype=None, requires_grad=False):
    """Zeros of the shape and (unless `dtype` is given) the dtype of `input`."""
    x = _like(input)
    return _new(np.zeros(x.shape, _dtype(dtype, x.dtype)), requires_grad)


def ones_like(input, *, dtype=None, requires_grad=False):
    """Ones of the shape and (unless `dtype` is given) the dtype of `input`."""
    x = _like(input)
    return _new(np.ones(x.shape, _dtype(dtype, x.dtype)), requires_grad)


def full_like(input, fill_value, *, dtype=None, requires_grad=False):
    """`fill_value` in the shape and (unless `dtype` is given) the dtype of `input`."""
    x = _like(input)
    return _new(np.full(x.shape, fill_value, _dtype(dtype, x.dtype)), requires_grad)


def rand_like(input, *, generator=None, dtype=None, requires_grad=False):
    """`rand` in the shape and (unless `dtype` is given) the floating dtype of `input`."""
    x = _like(input)
    return rand(x.shape, generator=generator, dtype=_float_dtype("rand_like", dtype, x.dtype),
                requires_grad=requires_grad)


def randn_like(input, *, generator=None, dtype=None, requires_grad=False):
    """`randn` in the shape and (unless `dtype` is given) the floating dtype of `input`."""
    x = _like(input)
    return randn(x.shape, generator=generator,
                 dtype=_float_dtype("randn_like", dtype, x.dtype), requires_grad=requires_grad)
