"""autotensor: a small, readable reverse-mode autograd tensor engine on numpy."""

from . import functional, memory, ops
from .autograd import detect_anomaly, grad
from .function import (
    Function,
    enable_grad,
    fused_enabled,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    use_fused,
)
from .gradient_check import gradcheck, gradgradcheck
from .ops import *  # noqa: F403  (every public op: see ops.__all__)
from .ops import all, any, argmax, argmin, floor, round, sign  # noqa: A004, F401 (NO_GRAD)
from .tensor import Tensor, ones, randn, tensor, zeros

__version__ = "0.1.0"
memory.tune_malloc()

__all__ = ["Tensor", "tensor", "zeros", "ones", "randn", "Function", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "use_fused", "fused_enabled", "detect_anomaly",
           "grad", "gradcheck", "gradgradcheck", "functional", *ops.__all__, *ops.NO_GRAD]
