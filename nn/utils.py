"""Gradient and parameter utilities with PyTorch's names (`torch.nn.utils`).

    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)   # returns the norm before
    opt.step()

The clip functions change each parameter's `.grad` in place: an ndarray (what backward leaves
on a leaf), or, after a backward with create_graph=True, a Tensor whose data is changed.
Parameters whose `.grad` is None are skipped.
"""

from __future__ import annotations

import math

import numpy as np

from autotensor import Tensor, concatenate, validate

from .interop import load_torch_state_dict, torch_state_dict  # noqa: F401  (docs/models.md)

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector",
           "vector_to_parameters"]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients together so that their joint norm is at most `max_norm`; return
    that norm (a 0-d Tensor), computed before clipping, as PyTorch does:

        total_norm = || (||g_1||_p, ..., ||g_n||_p) ||_p     (p = norm_type; inf: max |g|)
        g_i *= min(max_norm / (total_norm + 1e-6), 1)

    With error_if_nonfinite a nan or inf norm raises a RuntimeError instead (otherwise the
    gradients are scaled by it, and become nan). max_norm=inf only measures the norm.
    """
    owner = "clip_grad_norm_"
    grads = [_grad(p) for p in _parameters(owner, parameters) if p.grad is not None]
    max_norm = _bound(owner, "max_norm", max_norm)
    p = _norm_type(owner, norm_type)
    validate.choice(owner, "error_if_nonfinite", error_if_nonfinite, (False, True))
    if not grads:
        return Tensor(0.0)
    total = _vector_norm(np.array([_vector_norm(g, p) for g in grads]), p)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           f"gradients is {total}, so they cannot be clipped; pass "
                           "error_if_nonfinite=False to scale them by it anyway")
    # NOTE: 1e-6 is added to the norm, not compared against (PyTorch's formula): a norm just
    # at max_norm is still scaled, by max_norm / (max_norm + 1e-6).
    scale = np.minimum(max_norm / (total + 1e-6), 1.0)      # np.minimum keeps a nan
    with np.errstate(invalid="ignore"):                    # inf * 0: the documented nan
        for g in grads:
            g *= scale
    return Tensor(total)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry into [-clip_value, clip_value], in place."""
    owner = "clip_grad_value_"
    params = _parameters(owner, parameters)
    clip_value = _bound(owner, "clip_value", clip_value)
    for p in params:
        if p.grad is not None:
            g = _grad(p)
            np.clip(g, -clip_value, clip_value, out=g)


def parameters_to_vector(parameters):
    """The parameters flattened and joined into one 1-d Tensor (recorded on the tape, so
    gradients flow back to each parameter)."""
    params = _parameters("parameters_to_vector", parameters)
    if not params:
        raise ValueError("parameters_to_vector: parameters is empty")
    return concatenate([p.reshape(-1) for p in params])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of the 1-d `vec` (a Tensor or ndarray) into the parameters, in
    their order. Each parameter's array is written in place and keeps its dtype (PyTorch
    instead makes each parameter a view of `vec`)."""
    owner = "vector_to_parameters"
    params = _parameters(owner, parameters)
    data = vec.data if isinstance(vec, Tensor) else vec
    if not isinstance(data, np.ndarray):
        raise ValueError(f"{owner}: vec must be a Tensor or an ndarray, got "
                         f"{type(vec).__name__}")
    total = sum(p.size for p in params)
    if data.shape != (total,):
        raise ValueError(f"{owner}: vec must have shape ({total},), the parameters' total "
                         f"size, got {data.shape}")
    start = 0
    for p in params:
        p.data[...] = data[start:start + p.size].reshape(p.shape)
        start += p.size


# ---- helpers -------------------------------------------------------------------------------------
def _parameters(owner, parameters):
    """A Tensor or an iterable of Tensors, as a list."""
    if isinstance(parameters, Tensor):
        return [parameters]
    try:
        params = list(parameters)
    except TypeError:
        raise ValueError(f"{owner}: parameters must be a Tensor or an iterable of Tensors, "
                         f"got {type(parameters).__name__}") from None
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise ValueError(f"{owner}: parameters[{i}] must be a Tensor, got "
                             f"{type(p).__name__}")
    return params


def _grad(p):
    """The array holding `p`'s gradient, to read and change in place."""
    return p.grad.data if isinstance(p.grad, Tensor) else np.asarray(p.grad)


def _vector_norm(x, p):
    """||x||_p over all entries (the largest |x| for p = inf; 0 for an empty array)."""
    x = np.ravel(x)
    return np.linalg.norm(x, ord=p) if x.size else x.dtype.type(0)


def _bound(owner, name, value):
    """A clipping bound: a finite number >= 0, or inf (no clipping)."""
    if isinstance(value, (float, np.floating)) and value == math.inf:
        return math.inf
    return validate.number(owner, name, value, ">= 0", hint="or inf, which never clips")


def _norm_type(owner, value):
    """A norm's order: a finite number > 0, or inf (also the string 'inf', as PyTorch)."""
    if value == "inf" or (isinstance(value, (float, np.floating)) and value == math.inf):
        return math.inf
    return validate.number(owner, "norm_type", value, "> 0", hint="or inf, the largest |g|")
