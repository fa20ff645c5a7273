"""Numerical gradients: the course's helpers and `gradcheck` for any function of Tensors.

All use centered differences (f(x + h) - f(x - h)) / 2h, exact up to O(h**2); run them in
float64, where h = 1e-5 leaves relative errors near 1e-8 for smooth functions.
"""

from __future__ import annotations

import warnings
from random import randrange

import numpy as np

from .autograd import grad
from .function import enable_grad
from .saved_arrays import writable
from .tensor import Tensor, _data


def _value(out):
    """A function's output as an ndarray copy (it may be a Tensor or a view of x)."""
    return np.array(_data(out), dtype=np.float64)


def _plus_minus(f, x, ix, h):
    """(f(x), f(x)) with x[ix] raised, then lowered by h; x is restored afterwards.

    `x` may be held read-only by a live graph that saved it (saved_arrays.writable): every value
    changed here is restored exactly before anything can backpropagate through that graph.
    """
    old = x[ix]
    with writable(x):
        x[ix] = old + h
    plus = _value(f(x))
    with writable(x):
        x[ix] = old - h
    minus = _value(f(x))
    with writable(x):
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
    x, y = np.asarray(_data(x)), np.asarray(_data(y))
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


def gradcheck(func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0,
              fast_mode=False, nworst=5):
    """Check the tape's gradients of `func(*inputs)` against centered differences.

    `func` is a function of Tensors or a Module (its parameters are checked too). Every Tensor
    input (and parameter) with requires_grad=True is checked element by element (fast_mode:
    along one random direction per tensor, as PyTorch's fast mode). A fixed random upstream
    gradient `u` per output (seed) turns any outputs (a Tensor or a tuple) into the scalar
    sum(out * u). Passes when |analytic - numerical| <= atol + rtol * |numerical| everywhere.

    Kinks: an element whose one-sided slopes (f(x+h) - f(x))/h and (f(x) - f(x-h))/h disagree
    straddles a non-differentiable point (relu at 0, a max tie, the SVM hinge). It is
    re-checked with h/10 and h/100; if it still straddles one it is skipped and reported in a
    warning, not counted as a failure.

    On failure raises GradcheckError naming the tensor and its `nworst` worst elements (index,
    analytic, numerical, error), or returns False with raise_exception=False. Inputs' data
    and `.grad` are left as found.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [(f"input {i}", t) for i, t in enumerate(inputs)
               if isinstance(t, Tensor) and t.requires_grad]
    if hasattr(func, "named_parameters") and callable(func):       # a Module
        checked += [(f"parameter '{n}'", p) for n, p in func.named_parameters()
                    if p.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, nothing to check")
    for label, t in checked:
        if t.dtype != np.float64:
            warnings.warn(f"gradcheck: {label} is {t.dtype}; centered differences need float64 "
                          "to be trusted", stacklevel=2)

    with enable_grad():
        outs = _outputs(func(*inputs))
    rng = np.random.default_rng(seed)
    us = [rng.standard_normal(o.shape).astype(o.dtype) for o in outs]
    live = [k for k, o in enumerate(outs) if o.requires_grad]
    tensors = [t for _, t in checked]
    analytic = [None] * len(tensors)
    if live:
        analytic = list(grad([outs[k] for k in live], tensors, [us[k] for k in live],
                             allow_unused=True))
    analytic = [np.zeros(t.shape) if a is None else a.data for a, t in zip(analytic, tensors)]
    del outs

    def objective(_=None):
        # NOTE: not under no_grad: a function may call at.grad inside (a gradient penalty).
        return sum(float(np.sum(_value(o) * u)) for o, u in zip(_outputs(func(*inputs)), us))

    check = _check_fast if fast_mode else _check_elements
    failures, kinks = [], []
    for (label, t), a in zip(checked, analytic):
        failure = check(objective, label, t.data, a, eps, atol, rtol, nworst, rng, kinks)
        if failure:
            failures.append(failure)
    if kinks:
        warnings.warn(f"gradcheck: {len(kinks)} element(s) sit on non-differentiable points "
                      "and were skipped: " + "; ".join(kinks[:nworst]), stacklevel=2)
    if failures:
        if raise_exception:
            raise GradcheckError("\n".join(failures))
        return False
    return True


def _outputs(out):
    """A function's result as a tuple of Tensors (None entries dropped)."""
    items = out if isinstance(out, (tuple, list)) else (out,)
    for o in items:
        if o is not None and not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got "
                            f"{type(o).__name__}")
    return tuple(o for o in items if o is not None)


def _exceeds(analytic, numerical, atol, rtol):
    """How far each element is beyond the tolerance (> 0 fails; nan/inf fail)."""
    excess = np.abs(analytic - numerical) - (atol + rtol * np.abs(numerical))
    # NOTE: a nan/inf on either side is a failure (and the worst element): nan compares
    # False, so `excess > 0` alone would pass a function that is nan where it is checked.
    return np.where(np.isfinite(excess), excess, np.inf)


def _slopes(f, x, ix, h, f0):
    """(central, left, right) difference quotients of f at x[ix] with step h."""
    plus, minus = _plus_minus(f, x, ix, h)
    return (plus - minus) / (2 * h), (f0 - minus) / h, (plus - f0) / h


def _on_kink(f, x, ix, h, f0, a, atol, rtol):
    """None when a smaller step agrees with `a`; (left, right) slopes when every step tried
    straddles a kink; False when the disagreement is not a kink."""
    for step in (h, h / 10, h / 100):
        central, left, right = _slopes(f, x, ix, step, f0)
        if _exceeds(a, central, atol, rtol) <= 0:
            return None
        if not (np.isfinite(left) and np.isfinite(right)) or \
                abs(right - left) <= atol + rtol * abs(central):
            return False             # smooth here (or nan): a real disagreement
    return left, right


def _check_elements(f, label, x, analytic, eps, atol, rtol, nworst, rng, kinks):
    f0 = f()
    numerical = np.zeros(x.shape, dtype=np.float64)
    for ix in np.ndindex(x.shape):
        plus, minus = _plus_minus(f, x, ix, eps)
        numerical[ix] = (plus - minus) / (2 * eps)
    excess = _exceeds(analytic, numerical, atol, rtol)
    for ix in np.ndindex(x.shape):
        if excess[ix] <= 0:
            continue
        kink = _on_kink(f, x, ix, eps, f0, analytic[ix], atol, rtol)
        if kink is None or kink:
            excess[ix] = 0
        if kink:
            kinks.append(f"{label} index {ix}: left slope {kink[0]:.6g}, right slope "
                         f"{kink[1]:.6g}, analytic {float(analytic[ix]):.6g}")
    if not (excess.size and np.max(excess) > 0):
        return None
    order = np.argsort(-excess, axis=None)[:nworst]
    worst = [tuple(int(i) for i in np.unravel_index(j, x.shape)) for j in order
             if excess.flat[j] > 0]
    first = worst[0]
    lines = [f"gradcheck failed for {label} (shape {x.shape}, dtype {x.dtype}) at index "
             f"{first}: analytic {float(analytic[first])!r}, numerical "
             f"{float(numerical[first])!r}, abs error "
             f"{abs(analytic[first] - numerical[first]):.3e} exceeds atol {atol} + rtol "
             f"{rtol} * |numerical|; {int(np.sum(excess > 0))} of {x.size} elements fail"]
    if len(worst) > 1:
        lines.append(f"  the {len(worst)} worst elements of {label}:")
        lines += [f"    index {ix}: analytic {float(analytic[ix]):.8g}, numerical "
                  f"{float(numerical[ix]):.8g}, abs error {abs(analytic[ix] - numerical[ix]):.3e}"
                  for ix in worst]
    return "\n".join(lines)


def _check_fast(f, label, x, analytic, eps, atol, rtol, nworst, rng, kinks):
    """One random direction v: compare sum(analytic * v) with the directional difference."""
    f0, orig = f(), x.copy()
    for _ in range(3):               # a direction that straddles a kink: draw another
        v = rng.standard_normal(x.shape)
        slopes = []
        for h in (eps, -eps):
            with writable(x):
                x[...] = orig + h * v
            slopes.append((f() - f0) / h)
            with writable(x):
                x[...] = orig
        right, left = slopes
        numerical, a = (right + left) / 2, float(np.sum(analytic * v))
        if _exceeds(np.float64(a), np.float64(numerical), atol, rtol) <= 0:
            return None
        if not (np.isfinite(left) and np.isfinite(right)) or \
                abs(right - left) <= atol + rtol * abs(numerical):
            return (f"gradcheck failed for {label} (shape {x.shape}, dtype {x.dtype}) along a "
                    f"random direction (fast_mode): analytic {a!r}, numerical {numerical!r}, "
                    f"abs error {abs(a - numerical):.3e} exceeds atol {atol} + rtol {rtol} * "
                    "|numerical|")
    kinks.append(f"{label}: every random direction straddles a kink (fast_mode)")
    return None


def gradgradcheck(func, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, seed=0, fast_mode=False, nworst=5):
    """Check second derivatives: gradcheck of the first-order gradients (PyTorch's
    gradgradcheck).

    The checked function maps (inputs, grad_outputs) to grad(func(*inputs), inputs,
    grad_outputs, create_graph=True); grad_outputs (random, fixed by `seed`, when None) are
    checked as inputs too. So every recorded backward rule is compared with central
    differences of the first-order gradient.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    diff = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not diff:
        raise ValueError("gradgradcheck: no input has requires_grad=True, nothing to check")
    with enable_grad():
        outs = _outputs(func(*inputs))
    live = [k for k, o in enumerate(outs) if o.requires_grad]
    if grad_outputs is None:
        rng = np.random.default_rng(seed + 1)
        grad_outputs = [Tensor(rng.standard_normal(outs[k].shape).astype(outs[k].dtype),
                               requires_grad=True) for k in live]
    else:
        grad_outputs = list(grad_outputs if isinstance(grad_outputs, (tuple, list))
                            else (grad_outputs,))
    n = len(inputs)

    def first_order(*args):
        xs, gos = args[:n], args[n:]
        with enable_grad():
            outs = _outputs(func(*xs))
            grads = grad([outs[k] for k in live], [xs[i] for i in diff], list(gos),
                         create_graph=True, allow_unused=True)
        return tuple(g if g is not None else Tensor(np.zeros(xs[i].shape, xs[i].dtype))
                     for g, i in zip(grads, diff))

    return gradcheck(first_order, (*inputs, *grad_outputs), eps, atol, rtol, raise_exception,
                     seed, fast_mode, nworst)
