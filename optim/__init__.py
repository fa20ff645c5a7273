"""Optimizers, the course update rules and the Solver training loop (`autotensor.optim`).

- `rules`: the course's update functions `rule(w, dw, config=None) -> (next_w, config)`.
- `SGD`, `Adam`, `RMSprop`, `Adagrad`: optimizer classes over Tensors/Parameters (same maths,
  delegated to `rules`), with param groups and state_dict.
- `StepLR`, `ExponentialLR`, `CosineAnnealingLR`: per-epoch learning-rate schedules.
- `Solver`: the course's training loop; `ModuleModel` adapts an `nn.Module` to it.
- `save_checkpoint` / `load_checkpoint`: atomic, pickle-free `.npz` + JSON checkpoint files
  (`checkpoint` also defines the Solver's checkpoint schema).
- `ClassifierTrainer`: the assignment-1 trainer.

Guide: docs/training.md.
"""

from . import rules
from .checkpoint import load_checkpoint, save_checkpoint
from .classifier_trainer import ClassifierTrainer
from .module_model import ModuleModel
from .optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop
from .rules import adagrad, adam, rmsprop, sgd, sgd_momentum, sgd_nesterov_momentum
from .schedules import CosineAnnealingLR, ExponentialLR, LRScheduler, StepLR
from .solver import Solver

__all__ = ["rules", "sgd", "sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam", "adagrad",
           "Optimizer", "SGD", "Adam", "RMSprop", "Adagrad",
           "LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR",
           "Solver", "ModuleModel", "save_checkpoint", "load_checkpoint", "ClassifierTrainer"]
