"""Numerical gradients: the course's helpers and `gradcheck` for any function of Tensors.

All use centered differences (f(x + h) - f(x - h)) / 2h, exact up to O(h**2); run them in
float64, where h = 1e-5 leaves relative errors near 1e-8 for smooth functions.
"""

from __future__ import annotations

import warnings
from random import randrange

import numpy as np

from .function import no_grad
from .tensor import Tensor


def _value(out):
    """A function's output as an ndarray copy (it may be a Tensor or a view of x)."""
    return np.array(out.data if isinstance(out, Tensor) else out, dtype=np.float64)


def _plus_minus(f, x, ix, h):
    """(f(x), f(x)) with x[ix] raised, then lowered by h; x is restored afterwards."""
    old = x[ix]
    x[ix] = old + h
    plus = _value(f(x))
    x[ix] = old - h
    minus = _value(f(x))
    x[ix] = old
    return plus, minus


def eval_numerical_gradient(f, x, verbose=True, h=1e-5):
    """Gradient of the scalar function `f` at the array `x`, one element at a time.

    `x` is modified in place while evaluating and restored afterwards (the course's contract).
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    for ix in np.ndindex(x.shape):
        plus, minus = _plus_minus(f, x, ix, h)
        grad[ix] = (float(plus) - float(minus)) / (2 * h)
        if verbose:
            print(ix, grad[ix])
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Gradient of sum(f(x) * df) at `x`, for an array-valued `f` and upstream gradient `df`."""
    grad = np.zeros(x.shape, dtype=np.float64)
    for ix in np.ndindex(x.shape):
        plus, minus = _plus_minus(f, x, ix, h)
        grad[ix] = np.sum((plus - minus) * df) / (2 * h)
    return grad


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5):
    """Compare `analytic_grad` with numerical values at `num_checks` random elements.

    Prints one line per check as the course does and returns the relative errors.
    """
    errors = []
    for _ in range(num_checks):
        ix = tuple(randrange(n) for n in x.shape)
        plus, minus = _plus_minus(f, x, ix, h)
        numerical = (float(plus) - float(minus)) / (2 * h)
        analytic = analytic_grad[ix]
        err = abs(numerical - analytic) / max(1e-12, abs(numerical) + abs(analytic))
        print(f"numerical: {numerical:f} analytic: {analytic:f}, relative error: {err:e}")
        errors.append(err)
    return np.array(errors)


def rel_error(x, y):
    """max(|x - y| / max(1e-8, |x| + |y|)): the course's relative error."""
    x = x.data if isinstance(x, Tensor) else np.asarray(x)
    y = y.data if isinstance(y, Tensor) else np.asarray(y)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Check the tape's gradients of `fn(*inputs)` against centered differences.

    Every Tensor input with requires_grad=True is checked element by element. A random
    upstream gradient `u` (fixed `seed`) turns any output shape into the scalar sum(out * u),
    so the whole Jacobian is exercised. Passes when |analytic - numerical| <= atol +
    rtol * |numerical| everywhere. On failure raises GradcheckError naming the worst element
    (or returns False when raise_exception=False). Inputs' existing `.grad` are left as found.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            warnings.warn(f"gradcheck: input {i} is {inputs[i].dtype}; centered differences "
                          "need float64 to be trusted", stacklevel=2)

    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    u = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)

    saved_grads = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    try:
        out.backward(u)
        analytic = [inputs[i].grad if inputs[i].grad is not None
                    else np.zeros_like(inputs[i].data) for i in checked]
    finally:
        for i, g in zip(checked, saved_grads):
            inputs[i].grad = g

    def objective(_):
        with no_grad():
            return np.sum(_value(fn(*inputs)) * u)

    for i, a in zip(checked, analytic):
        x = inputs[i].data
        numerical = np.zeros(x.shape, dtype=np.float64)
        for ix in np.ndindex(x.shape):
            plus, minus = _plus_minus(objective, x, ix, eps)
            numerical[ix] = (plus - minus) / (2 * eps)
        excess = np.abs(a - numerical) - (atol + rtol * np.abs(numerical))
        # NOTE: a nan/inf on either side is a failure (and the worst element): nan compares
        # False, so `excess > 0` alone would pass a function that is nan where it is checked.
        excess = np.where(np.isfinite(excess), excess, np.inf)
        if excess.size and np.max(excess) > 0:
            worst = np.unravel_index(np.argmax(excess), x.shape)
            msg = (f"gradcheck failed for input {i} (shape {x.shape}, dtype {x.dtype}) at "
                   f"index {tuple(int(w) for w in worst)}: analytic {float(a[worst])!r}, "
                   f"numerical {float(numerical[worst])!r}, abs error "
                   f"{abs(a[worst] - numerical[worst]):.3e} exceeds atol {atol} + rtol "
                   f"{rtol} * |numerical|; {int(np.sum(excess > 0))} of {x.size} elements fail")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True
