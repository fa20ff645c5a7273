"""Convolution modules over (N, C, H, W) or (C, H, W) inputs, with PyTorch's names, parameters
and default initialisation, backed by the fused fast paths."""

from __future__ import annotations

import math

import numpy as np

from autotensor import validate
from autotensor.fused import geometry

from . import functional as F
from . import init
from .module import Module, Parameter


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share: argument checks, parameters and their init.

    Init as PyTorch's default: weight kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with fan_in = weight.shape[1] *
    kh * kw, drawn from `rng` or else numpy's global RNG, as every module's init (at.manual_seed
    seeds it; so does the course's np.random.seed).
    """

    def __init__(self, op, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 groups, bias, padding_mode, weight_shape, dtype, rng):
        super().__init__()
        self.in_channels = validate.size(op, "in_channels", in_channels)
        self.out_channels = validate.size(op, "out_channels", out_channels)
        self.kernel_size = geometry.pair(kernel_size, f"{op}: kernel_size", 1)
        # stride, padding, dilation: an int or an (h, w) pair, kept as given (repr shows them).
        stride_hw = geometry.pair(stride, f"{op}: stride", 1)
        dilation_hw = geometry.pair(dilation, f"{op}: dilation", 1)
        if isinstance(padding, str) and op == "Conv2d":
            geometry.conv_padding(padding, self.kernel_size, dilation_hw, stride_hw, op)
        else:
            geometry.pair(padding, f"{op}: padding", 0)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups = geometry.check_groups(self.in_channels, self.out_channels, groups, op)
        if padding_mode != "zeros":
            raise NotImplementedError(f"{op}: padding_mode={padding_mode!r} is not implemented "
                                      "(only 'zeros')")
        self.padding_mode = padding_mode
        self.weight = Parameter(np.empty(weight_shape(self.groups), dtype=dtype))
        init.kaiming_uniform(self.weight, gain=math.sqrt(1.0 / 3.0), rng=rng)
        self.bias = None
        if bias:
            bound = 1.0 / math.sqrt(init.fans(self.weight.shape)[0])
            draw = np.random.uniform if rng is None else rng.uniform
            self.bias = Parameter(draw(-bound, bound, self.out_channels).astype(dtype))

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}")
        s += f", dilation={self.dilation}" if self.dilation not in (1, (1, 1)) else ""
        s += f", groups={self.groups}" if self.groups != 1 else ""
        return s + f", bias={self.bias is not None}"


class Conv2d(_ConvNd):
    """2-D cross-correlation as torch.nn.Conv2d: weight (out_channels, in_channels / groups,
    kh, kw), bias (out_channels,). padding: int, (h, w), 'valid' or 'same' (stride 1)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float64, rng=None):
        kernel = geometry.pair(kernel_size, "Conv2d: kernel_size", 1)
        super().__init__("Conv2d", in_channels, out_channels, kernel_size, stride, padding,
                         dilation, groups, bias, padding_mode,
                         lambda g: (out_channels, in_channels // g, *kernel), dtype, rng)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution as torch.nn.ConvTranspose2d: weight (in_channels,
    out_channels / groups, kh, kw), bias (out_channels,); Ho = (H - 1) * stride - 2 * padding
    + dilation * (kh - 1) + output_padding + 1."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float64, rng=None):
        kernel = geometry.pair(kernel_size, "ConvTranspose2d: kernel_size", 1)
        super().__init__("ConvTranspose2d", in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias, padding_mode,
                         lambda g: (in_channels, out_channels // g, *kernel), dtype, rng)
        op = geometry.pair(output_padding, "ConvTranspose2d: output_padding", 0)
        for o, s, d in zip(op, geometry.pair(stride, "stride", 1),
                           geometry.pair(dilation, "dilation", 1)):
            if o >= s and o >= d:
                raise ValueError(f"ConvTranspose2d: output_padding {output_padding!r} must be "
                                 f"smaller than stride {stride!r} or dilation {dilation!r}")
        self.output_padding = output_padding

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)

    def extra_repr(self):
        extra = (f", output_padding={self.output_padding}"
                 if self.output_padding not in (0, (0, 0)) else "")
        return super().extra_repr() + extra
