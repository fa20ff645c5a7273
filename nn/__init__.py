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
from .activation import (
    ELU,
    GELU,
    Hardtanh,
    Identity,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .attention import MultiheadAttention
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout
from .embedding import Embedding
from .linear import Flatten, Linear
from .loss import (
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
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from .rnn import GRU, LSTM, RNN
from .rnn_cells import GRUCell, LSTMCell, RNNCell

__all__ = [
    # the base classes and containers
    "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict",
    # layers
    "Linear", "Flatten", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d",
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
    "GroupNorm", "Dropout", "Embedding", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
    "MultiheadAttention",
    # activations
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "ELU", "Softplus", "Hardtanh",
    "Softmax", "LogSoftmax", "Identity",
    # losses
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
    "BCEWithLogitsLoss", "KLDivLoss",
    # submodules
    "functional", "init", "layers", "models", "utils",
]
