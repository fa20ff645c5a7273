"""The schedulers' former home, kept importable: they live in `optim.lr_scheduler` now
(PyTorch's module name), and these names are the same classes."""

from .lr_scheduler import CosineAnnealingLR, ExponentialLR, LRScheduler, StepLR

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR"]
