"""Learning-rate schedules for the optimizer classes: call `.step()` once per epoch.

Each schedule computes every group's lr in closed form from the group's initial lr and the
epoch count (`lr = f(base_lr, epoch)`), rather than multiplying the current lr, so a schedule
restored from `state_dict()` continues exactly and rounding never accumulates.

    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    sched = optim.StepLR(opt, step_size=10, gamma=0.1)
    for epoch in range(30):
        train_one_epoch(opt)
        sched.step()
"""

from __future__ import annotations

import math

from autotensor import validate

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR"]


class LRScheduler:
    """Base class: remembers each group's initial lr and sets `group['lr']` on every step."""

    def __init__(self, optimizer):
        if not hasattr(optimizer, "param_groups"):
            raise ValueError(f"a schedule needs an optimizer with param_groups, got "
                             f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def lr_at(self, base_lr, epoch):
        """The learning rate after `epoch` calls to step(), starting from `base_lr`."""
        raise NotImplementedError

    def step(self):
        """Advance one epoch and write the new lr into every param group."""
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        """Everything but the optimizer (save that with the optimizer's own state_dict)."""
        return {k: (list(v) if isinstance(v, list) else v)
                for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state):
        """Restore what `state_dict()` saved (a subset of its keys updates only those).

        Everything is checked before anything is assigned: no unknown keys, `last_epoch` an
        integer >= 0, one finite `base_lrs` entry >= 0 per param group, and every other entry
        of the type and range the constructor accepts (`_STATE_RANGES`). A mismatch raises a
        ValueError naming the entry and changes nothing.
        """
        name = type(self).__name__
        if not isinstance(state, dict):
            raise ValueError(f"a {name} state_dict is a dict, got {type(state).__name__}")
        current = self.state_dict()
        unknown = sorted(set(state) - set(current), key=str)
        if unknown:
            raise ValueError(f"unknown keys {unknown} in a {name} state_dict")
        base_lrs = state.get("base_lrs", self.base_lrs)
        if not isinstance(base_lrs, (list, tuple)) or len(base_lrs) != len(
                self.optimizer.param_groups):
            raise ValueError(f"{name} state_dict: 'base_lrs' must list one lr per param group "
                             f"({len(self.optimizer.param_groups)}), got {base_lrs!r}")
        for i, lr in enumerate(base_lrs):
            validate.learning_rate("", f"{name} state_dict: 'base_lrs'[{i}]", lr)
        for key, value in state.items():
            what = f"{name} state_dict: {key!r}"
            kind, within = _STATE_RANGES.get(key, (None, None))
            if kind is int:
                validate.size("", what, value, within)
            elif kind is float:
                validate.number("", what, value, within)
            elif key != "base_lrs" and not isinstance(value, type(current[key])):
                raise ValueError(f"{what} must be a {type(current[key]).__name__}, got "
                                 f"{value!r}")
        # Everything checked: now assign (lists copied, so the caller's dict stays its own).
        self.__dict__.update({k: (list(v) if isinstance(v, (list, tuple)) else v)
                              for k, v in state.items()})

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.state_dict().items())
        return f"{type(self).__name__}({args})"


class StepLR(LRScheduler):
    """Step decay: lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        step_size = validate.size("StepLR", "step_size", step_size)
        validate.number("StepLR", "gamma", gamma, "> 0")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """Exponential decay: lr = base_lr * gamma ** epoch (the Solver's `lr_decay`, per epoch)."""

    def __init__(self, optimizer, gamma):
        validate.number("ExponentialLR", "gamma", gamma, "> 0")
        super().__init__(optimizer)
        self.gamma = gamma

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from base_lr down to eta_min over T_max epochs, then held at eta_min:

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * min(epoch, T_max) / T_max)) / 2
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        T_max = validate.size("CosineAnnealingLR", "T_max", T_max)
        validate.number("CosineAnnealingLR", "eta_min", eta_min, ">= 0")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, base_lr, epoch):
        frac = min(epoch, self.T_max) / self.T_max
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * frac)) / 2


# ---- checks of a loaded state_dict ---------------------------------------------------------------
# entry: (int | float, lower bound, bound excluded?) -- the ranges the constructors accept. An
# entry a subclass adds must keep its type.
# (type, minimum) of an integer entry, (type, range) of a float one (validate's wording).
_STATE_RANGES = {"last_epoch": (int, 0), "step_size": (int, 1), "T_max": (int, 1),
                 "gamma": (float, "> 0"), "eta_min": (float, ">= 0")}
