"""Neural-network building blocks: modules, functional ops, the course layer API, models.

    from autotensor import nn
    from autotensor.nn import functional as F

    model = nn.Sequential(nn.Linear(3072, 100), nn.ReLU(), nn.Linear(100, 10))
    loss = F.softmax_cross_entropy(model(x), y)
    loss.backward()

`nn.utils` holds PyTorch's gradient utilities (`clip_grad_norm_`, `clip_grad_value_`,
`parameters_to_vector`, `vector_to_parameters`). `nn.layers` is the course's modular API
(`affine_forward`, `conv_backward_fast`, ...) and `nn.models` its networks (`TwoLayerNet`,
`FullyConnectedNet`, `ThreeLayerConvNet`). See docs/nn.md.
"""

from . import functional, init, layers, models, utils
from .activation import LeakyReLU, ReLU, Sigmoid, Tanh
from .conv import Conv2d
from .dropout import Dropout
from .linear import Flatten, Linear
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm

__all__ = ["Module", "Parameter", "Sequential", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
           "Dropout", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Conv2d", "MaxPool2d", "Flatten",
           "functional", "init", "layers", "models", "utils"]

# ---- convolution and pooling (PyTorch's names) --------------------------------------------------
from .conv import ConvTranspose2d  # noqa: E402
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d  # noqa: E402

__all__ += ["ConvTranspose2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"]

# ---- losses (nn/loss.py) ----
from .loss import (  # noqa: E402 (one block of its own, merged mechanically)
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)

__all__ += ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
            "BCELoss", "BCEWithLogitsLoss", "KLDivLoss"]

# ---- embeddings and recurrent layers (issue 12) ----
from .embedding import Embedding  # noqa: E402
from .rnn import GRU, LSTM, RNN  # noqa: E402
from .rnn_cells import GRUCell, LSTMCell, RNNCell  # noqa: E402

__all__ += ["Embedding", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

# ---- normalisation (issue 12) ----
from .normalization import GroupNorm  # noqa: E402

__all__ += ["GroupNorm"]

# Activations, containers and attention (issue 12): PyTorch's names.
from .activation import (  # noqa: E402
    ELU,
    GELU,
    Hardtanh,
    Identity,
    LogSoftmax,
    SiLU,
    Softmax,
    Softplus,
)
from .attention import MultiheadAttention  # noqa: E402
from .container import ModuleDict, ModuleList, Sequential  # noqa: E402

__all__ += ["GELU", "SiLU", "ELU", "Softplus", "Hardtanh", "Softmax", "LogSoftmax", "Identity",
            "ModuleList", "ModuleDict", "MultiheadAttention"]
