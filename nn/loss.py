"""PyTorch's loss modules (`nn.CrossEntropyLoss`, `nn.MSELoss`, ...): the functions of
`loss_functional.py` with their options held by a Module, as torch.nn's.

    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    loss = criterion(model(x), y)

As in PyTorch, `weight` and `pos_weight` are buffers (saved in `state_dict()` when given),
`reduction` is an attribute; the arguments are checked here, at construction.
"""

from __future__ import annotations

import numpy as np

from autotensor import validate
from autotensor.tensor import _data

from . import loss_functional as LF
from .module import Module


def _buffer(owner, name, value):
    """A weight given as a Tensor or array-like, kept as an ndarray buffer (None stays None)."""
    if value is None:
        return None
    a = np.asarray(_data(value))
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: {name} must hold numbers, got dtype {a.dtype}")
    return a.astype(a.dtype if a.dtype.kind == "f" else np.float64)


class _Loss(Module):
    """A loss with a `reduction`: "mean", "sum" or "none"."""

    _reductions = LF.REDUCTIONS

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = validate.choice(type(self).__name__, "reduction", reduction,
                                         self._reductions)

    def extra_repr(self):
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class _WeightedLoss(_Loss):
    """A loss with per-class (or per-element) weights, kept as the buffer `weight`."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", _buffer(type(self).__name__, "weight", weight))


class NLLLoss(_WeightedLoss):
    """F.nll_loss: log-probabilities (N, C) or (N, C, d1, ...) against class indices."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__(weight, reduction)
        if not validate.is_int(ignore_index):
            raise ValueError(f"NLLLoss: ignore_index must be an integer, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)

    def forward(self, input, target):  # noqa: A002 (PyTorch's argument names)
        return LF.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                           reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """F.cross_entropy: scores (logits) against class indices or class probabilities."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, reduction)
        if not validate.is_int(ignore_index):
            raise ValueError(f"CrossEntropyLoss: ignore_index must be an integer, got "
                             f"{ignore_index!r}")
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(validate.number("CrossEntropyLoss", "label_smoothing",
                                                     label_smoothing, "in [0, 1]"))

    def forward(self, input, target):  # noqa: A002
        return LF.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                                reduction=self.reduction, label_smoothing=self.label_smoothing)


class MSELoss(_Loss):
    """F.mse_loss: the squared error."""

    def __init__(self, *, reduction="mean"):
        super().__init__(reduction)

    def forward(self, input, target):  # noqa: A002
        return LF.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """F.l1_loss: the absolute error."""

    def __init__(self, *, reduction="mean"):
        super().__init__(reduction)

    def forward(self, input, target):  # noqa: A002
        return LF.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """F.smooth_l1_loss: quadratic within beta of the target, linear beyond."""

    def __init__(self, *, reduction="mean", beta=1.0):
        super().__init__(reduction)
        self.beta = float(validate.number("SmoothL1Loss", "beta", beta, ">= 0"))

    def forward(self, input, target):  # noqa: A002
        return LF.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """F.huber_loss: quadratic within delta of the target, delta-sloped linear beyond."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        self.delta = float(validate.number("HuberLoss", "delta", delta, "> 0"))

    def forward(self, input, target):  # noqa: A002
        return LF.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    """F.binary_cross_entropy: probabilities in [0, 1] against targets of the same shape."""

    def __init__(self, weight=None, *, reduction="mean"):
        super().__init__(weight, reduction)

    def forward(self, input, target):  # noqa: A002
        return LF.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """F.binary_cross_entropy_with_logits: scores against targets, with a per-class pos_weight."""

    def __init__(self, weight=None, *, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", _buffer("BCEWithLogitsLoss", "weight", weight))
        self.register_buffer("pos_weight", _buffer("BCEWithLogitsLoss", "pos_weight",
                                                   pos_weight))

    def forward(self, input, target):  # noqa: A002
        return LF.binary_cross_entropy_with_logits(input, target, self.weight,
                                                   reduction=self.reduction,
                                                   pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """F.kl_div: log-probabilities against probabilities (or log-probabilities)."""

    _reductions = LF.REDUCTIONS + ("batchmean",)

    def __init__(self, *, reduction="mean", log_target=False):
        super().__init__(reduction)
        if not isinstance(log_target, (bool, np.bool_)):
            raise ValueError(f"KLDivLoss: log_target must be a bool, got {log_target!r}")
        self.log_target = bool(log_target)

    def forward(self, input, target):  # noqa: A002
        return LF.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
