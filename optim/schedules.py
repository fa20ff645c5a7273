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
        unknown = sorted(set(state) - set(self.state_dict()))
        if unknown:
            raise ValueError(f"unknown keys {unknown} in a {type(self).__name__} state_dict")
        if len(state.get("base_lrs", self.base_lrs)) != len(self.optimizer.param_groups):
            raise ValueError(f"state_dict has {len(state['base_lrs'])} base lrs, the optimizer "
                             f"has {len(self.optimizer.param_groups)} param groups")
        self.__dict__.update(state)

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
