"""autotensor: a small, readable reverse-mode autograd tensor engine on numpy."""

from . import creation, functional, memory, ops
from .autograd import detect_anomaly, grad
from .blas_threads import get_num_threads, set_num_threads
from .creation import *  # noqa: F403  (zeros, ones, arange, randn, ...: see creation.__all__)
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
from .random import (  # also makes `at.random` the module, as torch.random
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    seed,
    set_rng_state,
)
from .serialization import load, save
from .tensor import Tensor, tensor

__version__ = "0.1.0"
memory.tune_malloc()

__all__ = ["Tensor", "tensor", "Function", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled", "use_fused", "fused_enabled", "detect_anomaly", "grad",
           "gradcheck", "gradgradcheck", "functional", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "default_generator", "save", "load",
           "set_num_threads", "get_num_threads",
           *creation.__all__, *ops.__all__, *ops.NO_GRAD]
