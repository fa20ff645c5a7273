"""Pooling modules over (N, C, H, W) or (C, H, W) inputs, with PyTorch's names and arguments."""

from __future__ import annotations

from autotensor.fused import geometry

from . import functional as F
from .module import Module


class MaxPool2d(Module):
    """Max over kernel_size windows moved by `stride` (default: kernel_size), as
    torch.nn.MaxPool2d: padding (with -inf), dilation, ceil_mode, return_indices."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        geometry.pool2d_args(kernel_size, stride, op="MaxPool2d")
        geometry.pair(padding, "MaxPool2d: padding", 0)
        geometry.pair(dilation, "MaxPool2d: dilation", 1)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"
        if self.padding not in (0, (0, 0)) or self.dilation not in (1, (1, 1)):
            s += f", padding={self.padding}, dilation={self.dilation}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class AvgPool2d(Module):
    """Mean over kernel_size windows, as torch.nn.AvgPool2d (zero padding; count_include_pad
    says whether padded zeros count in the divisor)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        geometry.pool2d_args(kernel_size, stride, op="AvgPool2d")
        geometry.pair(padding, "AvgPool2d: padding", 0)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
                f"padding={self.padding}")


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output_size (int, or a pair whose None entries keep the
    input's size), as torch.nn.AdaptiveAvgPool2d."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output_size, as torch.nn.AdaptiveMaxPool2d."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        return F.adaptive_max_pool2d(x, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"
