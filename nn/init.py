"""Weight initialisers: PyTorch's `nn.init` names, and the course's initialisers.

PyTorch's (`calculate_gain`, `uniform_`, `normal_`, `trunc_normal_`, `constant_`, `ones_`,
`zeros_`, `eye_`, `xavier_uniform_`, `xavier_normal_`, `kaiming_uniform_`, `kaiming_normal_`,
`orthogonal_`): their signatures, defaults and formulas; each fills a Tensor or Parameter IN
PLACE under no_grad (an ndarray too) and returns it, drawing from autotensor's global generator
(`at.manual_seed`) or the `generator=` given. The course's (`gaussian`, `kaiming_normal`, ...,
no trailing underscore) draw from numpy's global RNG or `rng=`, as the course's code does.

Fan conventions, one rule for both families (`fans`); they differ from PyTorch's for 2-d
tensors only:
- a 2-d tensor is read as autotensor's Linear weight, stored (in_features, out_features):
  fan_in = shape[0], fan_out = shape[1]. So `kaiming_normal_(nn.Linear(20, 50).weight)` draws
  what PyTorch draws for its nn.Linear(20, 50) (PyTorch stores (out, in) and reads shape[1]).
  A 2-d tensor kept in PyTorch's (out, in) layout (an RNN's weight_ih_l0, attention's
  in_proj_weight) has its fans swapped by this rule: pass mode='fan_out' to kaiming_* to get
  PyTorch's fan_in (xavier_*, orthogonal_ and eye_ do not depend on the order);
- a tensor of rank >= 3, (out, in, *kernel) as conv weights: fan_in = in * prod(kernel),
  fan_out = out * prod(kernel), exactly PyTorch's.
"""

from __future__ import annotations

import math

import numpy as np

from autotensor import Tensor, no_grad
from autotensor.random import generator_or_default
from autotensor.tensor import _data

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
           "zeros_", "eye_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_", "fans", "gaussian", "kaiming_normal",
           "kaiming_uniform", "xavier_normal",
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
    raise ValueError(f"fans: fan in and fan out can not be computed for a tensor with fewer "
                     f"than 2 dimensions, got shape {shape}")


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


# ---- PyTorch's names ---------------------------------------------------------------------------
_LINEAR_GAINS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                 "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The gain PyTorch recommends for `nonlinearity`: 1 for linear/conv*/sigmoid, 5/3 for tanh,
    sqrt(2) for relu, sqrt(2 / (1 + slope**2)) for leaky_relu (slope `param`, default 0.01),
    3/4 for selu."""
    if nonlinearity in _LINEAR_GAINS:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _write(tensor, values, fn):
    """Copy `values` into `tensor` in place (a Tensor under no_grad, as PyTorch's init does)."""
    if isinstance(tensor, Tensor):
        with no_grad():
            tensor.copy_(np.asarray(values, dtype=tensor.dtype))
    elif isinstance(tensor, np.ndarray):
        tensor[...] = values
    else:
        raise TypeError(f"{fn}: expected a Tensor, Parameter or ndarray, got "
                        f"{type(tensor).__name__}")
    return tensor


def _shape(tensor, fn):
    if not isinstance(tensor, (Tensor, np.ndarray)):
        raise TypeError(f"{fn}: expected a Tensor, Parameter or ndarray, got "
                        f"{type(tensor).__name__}")
    return tuple(tensor.shape)


def _torch_fan(shape, mode, fn):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{fn}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    shape = _shape(tensor, "uniform_")
    gen = generator_or_default(generator, "uniform_")
    return _write(tensor, gen.uniform(float(a), float(b), shape), "uniform_")


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std**2)."""
    shape = _shape(tensor, "normal_")
    gen = generator_or_default(generator, "normal_")
    return _write(tensor, float(mean) + float(std) * gen.standard_normal(shape), "normal_")


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std**2) truncated to [a, b] (a and b are values, not in units of std).

    NOTE: drawn by rejection (redraw what falls outside), the exact truncated distribution;
    PyTorch inverts the CDF instead, so the numbers differ but not their distribution.
    """
    shape = _shape(tensor, "trunc_normal_")
    gen = generator_or_default(generator, "trunc_normal_")
    mean, std, a, b = float(mean), float(std), float(a), float(b)
    if not (std > 0 and a < b):
        raise ValueError(f"trunc_normal_: need std > 0 and a < b, got std={std}, a={a}, b={b}")
    mass = 0.5 * (math.erf((b - mean) / (std * math.sqrt(2))) -
                  math.erf((a - mean) / (std * math.sqrt(2))))
    if mass < 1e-4:
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] holds only {mass:.2g} of "
                         f"N({mean}, {std}**2); choose bounds nearer the mean")
    out = np.empty(shape)
    todo = np.ones(shape, dtype=bool)
    while todo.any():
        out[todo] = mean + std * gen.standard_normal(int(todo.sum()))
        todo = (out < a) | (out > b)
    return _write(tensor, out, "trunc_normal_")


def constant_(tensor, val):
    """Fill with the number `val`."""
    _shape(tensor, "constant_")
    return _write(tensor, val, "constant_")


def ones_(tensor):
    """Fill with ones."""
    return constant_(tensor, 1)


def zeros_(tensor):
    """Fill with zeros."""
    return constant_(tensor, 0)


def eye_(tensor):
    """Fill a 2-d tensor with the identity (ones on the diagonal, rectangular allowed)."""
    shape = _shape(tensor, "eye_")
    if len(shape) != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got shape {shape}")
    return _write(tensor, np.eye(*shape), "eye_")


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(_shape(tensor, "xavier_uniform_"))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(_shape(tensor, "xavier_normal_"))
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: U(-b, b), b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a);
    a is the negative slope of a leaky_relu. See the module docstring for the fans."""
    shape = _shape(tensor, "kaiming_uniform_")
    if 0 in shape:
        return tensor                    # nothing to fill (PyTorch warns and returns)
    fan = _torch_fan(shape, mode, "kaiming_uniform_")
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: N(0, std**2), std = gain / sqrt(fan), gain = calculate_gain(nonlinearity, a)."""
    shape = _shape(tensor, "kaiming_normal_")
    if 0 in shape:
        return tensor
    fan = _torch_fan(shape, mode, "kaiming_normal_")
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def orthogonal_(tensor, gain=1, generator=None):
    """A (semi-)orthogonal matrix times gain, from the QR decomposition of a normal draw; a
    tensor of rank > 2 is seen as (shape[0], rest flattened). Orthonormal rows when shape[0] <=
    the rest, orthonormal columns otherwise."""
    shape = _shape(tensor, "orthogonal_")
    if len(shape) < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, "
                         f"got shape {shape}")
    rows = shape[0]
    cols = math.prod(shape) // rows if rows else 0
    if rows * cols == 0:
        return tensor
    gen = generator_or_default(generator, "orthogonal_")
    flat = gen.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    # NOTE: the signs of r's diagonal make the decomposition unique, so q is Haar-distributed.
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _write(tensor, gain * q.reshape(shape), "orthogonal_")
