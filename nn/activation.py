"""Elementwise activation modules (no parameters): thin wrappers over `nn.functional`.

Names, arguments and defaults are PyTorch's. `inplace=` is accepted only as False: see
`F._not_inplace` and docs/nn.md ("Activations").
"""

from __future__ import annotations

from autotensor import validate

from . import functional as F
from .module import Module


class ReLU(Module):
    """max(x, 0)."""

    def __init__(self, inplace=False):
        super().__init__()
        F._not_inplace("ReLU", inplace)

    def forward(self, input):  # noqa: A002 (PyTorch's argument names, here and below)
        return F.relu(input)


class LeakyReLU(Module):
    """x where x > 0, else negative_slope * x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = float(validate.number("LeakyReLU", "negative_slope",
                                                    negative_slope))
        F._not_inplace("LeakyReLU", inplace)

    def forward(self, input):  # noqa: A002
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, input):  # noqa: A002
        return F.sigmoid(input)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, input):  # noqa: A002
        return F.tanh(input)


class GELU(Module):
    """x * Phi(x), exact (erf) or with approximate="tanh"."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = validate.choice("GELU", "approximate", approximate, ("none", "tanh"))

    def forward(self, input):  # noqa: A002
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """x * sigmoid(x)."""

    def __init__(self, inplace=False):
        super().__init__()
        F._not_inplace("SiLU", inplace)

    def forward(self, input):  # noqa: A002
        return F.silu(input)


class ELU(Module):
    """x where x > 0, else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = float(validate.number("ELU", "alpha", alpha))
        F._not_inplace("ELU", inplace)

    def forward(self, input):  # noqa: A002
        return F.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Softplus(Module):
    """log(1 + exp(beta x)) / beta; x itself where beta x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = float(validate.number("Softplus", "beta", beta))
        self.threshold = float(validate.number("Softplus", "threshold", threshold))
        if self.beta == 0:
            raise ValueError("Softplus: beta must be nonzero, got 0")

    def forward(self, input):  # noqa: A002
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    """x clipped to [min_val, max_val]."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        self.min_val = float(validate.number("Hardtanh", "min_val", min_val))
        self.max_val = float(validate.number("Hardtanh", "max_val", max_val))
        if self.min_val > self.max_val:
            raise ValueError(f"Hardtanh: min_val must be <= max_val, got {self.min_val} > "
                             f"{self.max_val}")
        F._not_inplace("Hardtanh", inplace)

    def forward(self, input):  # noqa: A002
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class _SoftmaxBase(Module):
    _fn = None

    def __init__(self, dim=None):
        super().__init__()
        if dim is None:
            # NOTE: PyTorch allows dim=None and guesses at call time (deprecated); we refuse.
            raise ValueError(f"{type(self).__name__}: dim is required (e.g. "
                             f"{type(self).__name__}(dim=-1)); PyTorch's implicit choice of dim "
                             "is deprecated and not supported")
        if not validate.is_int(dim):
            raise ValueError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
        self.dim = int(dim)

    def forward(self, input):  # noqa: A002
        return type(self)._fn(input, dim=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """exp(x) / sum(exp(x)) along `dim` (required)."""

    _fn = staticmethod(F.softmax)


class LogSoftmax(_SoftmaxBase):
    """log(softmax(x)) along `dim` (required), computed stably."""

    _fn = staticmethod(F.log_softmax)


class Identity(Module):
    """Returns its input; any constructor arguments are ignored, as in PyTorch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):  # noqa: A002
        return input
