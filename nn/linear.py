"""Fully connected layers: `Linear` and the `Flatten` that usually precedes it."""

from __future__ import annotations

import numpy as np

from autotensor import ops, validate
from autotensor.tensor import _tensor

from . import init
from .module import Module, Parameter


class Linear(Module):
    """out = x @ weight + bias, with weight stored (in_features, out_features) as the course does.

    As in PyTorch, x is (*, in_features): the layer applies to the last dimension of an input of
    any rank (F.affine keeps the course's flattening of (N, d1, ..., dk)). Weights start
    He-normal (std sqrt(2 / in_features)), biases at zero.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float64, rng=None):
        super().__init__()
        self.in_features = validate.size("Linear", "in_features", in_features)
        self.out_features = validate.size("Linear", "out_features", out_features)
        self.weight = Parameter(np.empty((self.in_features, self.out_features), dtype=dtype))
        init.kaiming_normal(self.weight, rng=rng)
        self.bias = Parameter(np.zeros(self.out_features, dtype=dtype)) if bias else None

    def forward(self, x):
        x = _tensor(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input must be (*, in_features={self.in_features}), got "
                             f"shape {x.shape}")
        out = ops.matmul(x, self.weight)
        return out if self.bias is None else out + self.bias

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Merges dims start_dim..end_dim, as PyTorch: (N, d1, ..., dk) -> (N, d1 * ... * dk) by
    default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return ops.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
