"""Normalisation modules: `BatchNorm1d`, `BatchNorm2d` (fused fast path) and `LayerNorm`.

Batch norm keeps running statistics as buffers (saved in state_dict, not trained), starting at
mean 0 and variance 1, and updates them in training with the course's convention
`running = momentum * running + (1 - momentum) * batch` (momentum 0.9, biased batch variance).
Evaluation mode normalises with the running statistics.
"""

from __future__ import annotations

import numpy as np

from . import functional as F
from .module import Module, Parameter


class _BatchNorm(Module):
    ndim = None           # the input rank the subclass accepts

    def __init__(self, num_features, eps=1e-5, momentum=0.9, dtype=np.float64):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be positive, got "
                             f"{num_features}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.gamma = Parameter(np.ones(self.num_features, dtype=dtype))
        self.beta = Parameter(np.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))

    def forward(self, x):
        if x.ndim != self.ndim or x.shape[1] != self.num_features:
            want = "(N, C, H, W)" if self.ndim == 4 else "(N, D)"
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input "
                             f"{want} with {self.num_features} features on axis 1, got "
                             f"{x.shape}")
        return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, D): per-feature statistics over the batch."""

    ndim = 2


class BatchNorm2d(_BatchNorm):
    """Spatial batch norm over (N, C, H, W): per-channel statistics over N, H and W."""

    ndim = 4


class LayerNorm(Module):
    """Normalise each sample over its last axis (num_features wide); the same in train and eval."""

    def __init__(self, num_features, eps=1e-5, dtype=np.float64):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"LayerNorm: num_features must be positive, got {num_features}")
        self.num_features, self.eps = int(num_features), float(eps)
        self.gamma = Parameter(np.ones(self.num_features, dtype=dtype))
        self.beta = Parameter(np.zeros(self.num_features, dtype=dtype))

    def forward(self, x):
        return F.layer_norm(x, self.gamma, self.beta, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}"
