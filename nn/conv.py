"""Convolution and pooling modules over (N, C, H, W) inputs, backed by the fused fast paths."""

from __future__ import annotations

import numpy as np

from autotensor import validate
from autotensor.fused.geometry import pair, pool2d_args

from . import functional as F
from . import init
from .module import Module, Parameter


class Conv2d(Module):
    """2-D cross-correlation: weight (out_channels, in_channels, kh, kw), bias (out_channels,).

    kernel_size, stride and padding are ints or (h, w) pairs. Output sizes as in
    `autotensor.fused.geometry.out_size` (windows that do not fit are dropped). Weights start
    He-normal with fan_in = in_channels * kh * kw, biases at zero.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype=np.float64, rng=None):
        super().__init__()
        self.in_channels = validate.size("Conv2d", "in_channels", in_channels)
        self.out_channels = validate.size("Conv2d", "out_channels", out_channels)
        self.kernel_size = pair(kernel_size, "Conv2d: kernel_size", 1)
        # stride and padding: an int or an (h, w) pair, kept as given (repr shows them so).
        pair(stride, "Conv2d: stride", 1)
        pair(padding, "Conv2d: padding", 0)
        self.stride, self.padding = stride, padding
        shape = (self.out_channels, self.in_channels) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        init.kaiming_normal(self.weight, rng=rng)
        self.bias = Parameter(np.zeros(self.out_channels, dtype=dtype)) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, pad=self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class MaxPool2d(Module):
    """Max over kernel_size windows moved by `stride` (default: kernel_size, i.e. no overlap)."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        pool2d_args(kernel_size, stride, op="MaxPool2d")
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"
