"""Optimizers, the course update rules and the Solver training loop (`autotensor.optim`).

- `rules`: the course's update functions `rule(w, dw, config=None) -> (next_w, config)`.
- `SGD`, `Adam`, `AdamW`, `RMSprop`, `Adagrad`: PyTorch's optimizer classes over
  Tensors/Parameters (the course's algorithms delegated to `rules`), with param groups and
  state_dict.
- `lr_scheduler`: PyTorch's learning-rate schedulers (StepLR, MultiStepLR, ExponentialLR,
  CosineAnnealingLR, LambdaLR, LinearLR, OneCycleLR, ReduceLROnPlateau, SequentialLR), all
  also exported here; `schedules` is the same classes' former module.
- `Solver`: the course's training loop; `ModuleModel` adapts an `nn.Module` to it.
- `save_checkpoint` / `load_checkpoint`: atomic, pickle-free `.npz` + JSON checkpoint files
  (`checkpoint` also defines the Solver's checkpoint schema).
- `ClassifierTrainer`: the assignment-1 trainer.

Guide: docs/training.md.
"""

from . import lr_scheduler, rules, schedules
from .checkpoint import load_checkpoint, save_checkpoint
from .classifier_trainer import ClassifierTrainer
from .lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from .module_model import ModuleModel
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .rules import adagrad, adam, rmsprop, sgd, sgd_momentum, sgd_nesterov_momentum
from .solver import Solver

__all__ = ["rules", "sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam", "adagrad",
           "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad",
           "lr_scheduler", "schedules", "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealingLR", "LambdaLR", "LinearLR", "OneCycleLR", "ReduceLROnPlateau",
           "SequentialLR",
           "Solver", "ModuleModel", "save_checkpoint", "load_checkpoint", "ClassifierTrainer"]
