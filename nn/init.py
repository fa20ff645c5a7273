"""Weight initialisers. Each fills a Parameter, Tensor or ndarray IN PLACE and returns it.

Random draws come from `rng` (a `np.random.Generator`) when given, else from numpy's global
RNG, so `np.random.seed(...)` makes models repeatable (the course relies on this).

Fan conventions (they differ from PyTorch's for linear weights):
- a Linear weight is stored (in_features, out_features), so fan_in = shape[0], fan_out = shape[1]
  (PyTorch stores (out, in) and reads them the other way round);
- a conv weight (F, C, HH, WW) has fan_in = C * HH * WW and fan_out = F * HH * WW, as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

from autotensor.tensor import _data

__all__ = ["fans", "gaussian", "kaiming_normal", "kaiming_uniform", "xavier_normal",
           "xavier_uniform", "he_normal", "he_uniform", "glorot_normal", "glorot_uniform",
           "zeros", "ones"]

_RELU_GAIN = math.sqrt(2.0)     # He et al.: keeps activations' variance through ReLU layers


def fans(shape):
    """(fan_in, fan_out) of a weight of `shape`: (in, out) for Linear, (F, C, *kernel) for conv."""
    shape = tuple(shape)
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) >= 3:
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    raise ValueError(f"fans: need a weight with at least 2 dimensions, got shape {shape}")


def _fill(t, values):
    _data(t)[...] = values
    return t


def _normal(shape, rng):
    return rng.standard_normal(shape) if rng is not None else np.random.randn(*shape)


def _uniform(bound, shape, rng):
    if rng is not None:
        return rng.uniform(-bound, bound, shape)
    return np.random.uniform(-bound, bound, shape)


def _fan(shape, mode):
    fan_in, fan_out = fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def gaussian(t, scale=1e-2, rng=None):
    """scale * N(0, 1): the course's `weight_scale * np.random.randn(*shape)`, same numbers."""
    shape = _data(t).shape
    return _fill(t, float(scale) * _normal(shape, rng))


def kaiming_normal(t, mode="fan_in", gain=_RELU_GAIN, rng=None):
    """He et al. 2015: N(0, std**2) with std = gain / sqrt(fan); gain sqrt(2) suits ReLU."""
    shape = _data(t).shape
    return _fill(t, gain / math.sqrt(_fan(shape, mode)) * _normal(shape, rng))


def kaiming_uniform(t, mode="fan_in", gain=_RELU_GAIN, rng=None):
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan), the same variance as kaiming_normal."""
    shape = _data(t).shape
    return _fill(t, _uniform(gain * math.sqrt(3.0 / _fan(shape, mode)), shape, rng))


def xavier_normal(t, gain=1.0, rng=None):
    """Glorot & Bengio 2010: N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    shape = _data(t).shape
    fan_in, fan_out = fans(shape)
    return _fill(t, gain * math.sqrt(2.0 / (fan_in + fan_out)) * _normal(shape, rng))


def xavier_uniform(t, gain=1.0, rng=None):
    """Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    shape = _data(t).shape
    fan_in, fan_out = fans(shape)
    return _fill(t, _uniform(gain * math.sqrt(6.0 / (fan_in + fan_out)), shape, rng))


def zeros(t):
    return _fill(t, 0)


def ones(t):
    return _fill(t, 1)


he_normal, he_uniform = kaiming_normal, kaiming_uniform
glorot_normal, glorot_uniform = xavier_normal, xavier_uniform
