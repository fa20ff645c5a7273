"""autotensor: a small, readable reverse-mode autograd tensor engine on numpy."""

from . import ops
from .autograd import detect_anomaly
from .function import (Function, enable_grad, fused_enabled, is_grad_enabled, no_grad,
                       use_fused)
from .gradient_check import gradcheck
from .ops import (abs, add, astype, clip, concatenate, div, exp, flatten, getitem, log,
                  log_softmax, logsumexp, matmul, max, maximum, mean, min, minimum, mul, neg, pad,
                  pow, relu, reshape, sigmoid, softmax, sqrt, stack, sub, sum, tanh, transpose,
                  var, where)
from .tensor import Tensor, ones, randn, tensor, zeros

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "zeros", "ones", "randn", "Function", "no_grad", "enable_grad",
           "is_grad_enabled", "use_fused", "fused_enabled", "detect_anomaly", "gradcheck",
           *ops.__all__]
