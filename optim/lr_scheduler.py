"""Learning-rate schedulers with PyTorch's names and signatures (`torch.optim.lr_scheduler`).

Call `sched.step()` after `opt.step()`: once per epoch for most schedulers, once per batch for
OneCycleLR, and with the monitored metric for ReduceLROnPlateau (`sched.step(val_loss)`).

Every scheduler but ReduceLROnPlateau computes each group's lr in closed form from the group's
initial lr and its step count (PyTorch's `_get_closed_form_lr`), rather than multiplying the
current lr, so a scheduler restored from `state_dict()` continues exactly and rounding never
accumulates. As in PyTorch, constructing one sets the lr of step 0 at once (LinearLR's warm-up
start, OneCycleLR's initial lr), and records each group's lr as `group['initial_lr']`, which
later schedulers on the same optimizer (SequentialLR's parts) start from.

    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    warmup = lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
    decay = lr_scheduler.CosineAnnealingLR(opt, T_max=45)
    sched = lr_scheduler.SequentialLR(opt, [warmup, decay], milestones=[5])
    for epoch in range(50):
        train_one_epoch(opt)
        sched.step()
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from autotensor import Tensor, validate

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "LambdaLR", "LinearLR", "OneCycleLR", "ReduceLROnPlateau", "SequentialLR"]


# ---- checks of a state_dict entry: (what, value, scheduler) -> the value to assign -------------
def _int(minimum):
    return lambda what, v, s: validate.size("", what, v, minimum)


def _real(within=""):
    return lambda what, v, s: validate.number("", what, v, within)


def _one_of(*options):
    return lambda what, v, s: validate.choice("", what, v, options)


def _bool(what, v, s):
    if not isinstance(v, bool):
        raise ValueError(f"{what} must be True or False, got {v!r}")
    return v


def _per_group(within, noun="number"):
    """A list with one number per param group of the scheduler's optimizer."""
    def check(what, v, s):
        n = len(s.optimizer.param_groups)
        if not isinstance(v, (list, tuple)) or len(v) != n:
            raise ValueError(f"{what} must list one {noun} per param group ({n}), got {v!r}")
        return [validate.number("", f"{what}[{i}]", x, within) for i, x in enumerate(v)]
    return check


def _check_milestones(what, v, s):
    return _milestones("", what, v)


class LRScheduler:
    """Base class: remembers each group's initial lr and sets `group['lr']` on every step.

    A subclass implements `lr_at(base_lr, epoch)` (or `_lrs(epoch)` for all groups at once)
    and lists a check for each attribute it saves in `_checks`.
    """

    _checks = {"last_epoch": _int(0), "base_lrs": _per_group(">= 0", "lr")}
    _not_saved = ("optimizer",)

    def __init__(self, optimizer):
        _check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._set(0)

    def lr_at(self, base_lr, epoch):
        """The learning rate after `epoch` calls to step(), starting from `base_lr`."""
        raise NotImplementedError

    def _lrs(self, epoch):
        return [self.lr_at(base, epoch) for base in self.base_lrs]

    def _set(self, epoch):
        """Write the lrs of step `epoch` into the param groups (all computed first)."""
        for group, lr in zip(self.optimizer.param_groups, self._lrs(epoch)):
            group["lr"] = lr

    def step(self):
        """Advance one step and write the new lr into every param group."""
        self._set(self.last_epoch + 1)
        self.last_epoch += 1

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        """Everything but the optimizer (save that with the optimizer's own state_dict)."""
        return {k: (list(v) if isinstance(v, list) else v)
                for k, v in vars(self).items() if k not in self._not_saved}

    def load_state_dict(self, state):
        """Restore what `state_dict()` saved (a subset of its keys updates only those).

        Everything is checked before anything is assigned: no unknown keys, `last_epoch` an
        integer >= 0, one finite `base_lrs` entry >= 0 per param group, and every other entry
        of the type and range the constructor accepts. A mismatch raises a ValueError naming
        the entry and changes nothing.
        """
        self._assign(self._checked(state))

    def _checked(self, state):
        """The entries of `state` to assign, each checked by `_checks` (nothing assigned)."""
        name = type(self).__name__
        if not isinstance(state, dict):
            raise ValueError(f"a {name} state_dict is a dict, got {type(state).__name__}")
        unknown = sorted(set(state) - set(self.state_dict()), key=str)
        if unknown:
            raise ValueError(f"unknown keys {unknown} in a {name} state_dict")
        return {k: self._checks[k](f"{name} state_dict: {k!r}", v, self)
                for k, v in state.items()}

    def _assign(self, checked):
        self.__dict__.update(checked)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.state_dict().items())
        return f"{type(self).__name__}({args})"


class StepLR(LRScheduler):
    """Step decay: lr = base_lr * gamma ** (epoch // step_size)."""

    _checks = {**LRScheduler._checks, "step_size": _int(1), "gamma": _real("> 0")}

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = validate.size("StepLR", "step_size", step_size)
        self.gamma = validate.number("StepLR", "gamma", gamma, "> 0")
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """Decay by gamma at each milestone: lr = base_lr * gamma ** (milestones passed by epoch)."""

    _checks = {**LRScheduler._checks, "milestones": _check_milestones, "gamma": _real("> 0")}

    def __init__(self, optimizer, milestones, gamma=0.1):
        self.milestones = _milestones("MultiStepLR", "milestones", milestones)
        self.gamma = validate.number("MultiStepLR", "gamma", gamma, "> 0")
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect_right(self.milestones, epoch)


class ExponentialLR(LRScheduler):
    """Exponential decay: lr = base_lr * gamma ** epoch (the Solver's `lr_decay`, per epoch)."""

    _checks = {**LRScheduler._checks, "gamma": _real("> 0")}

    def __init__(self, optimizer, gamma):
        self.gamma = validate.number("ExponentialLR", "gamma", gamma, "> 0")
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from base_lr down to eta_min over T_max epochs, then held at eta_min:

        lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * min(epoch, T_max) / T_max)) / 2
    """

    _checks = {**LRScheduler._checks, "T_max": _int(1), "eta_min": _real(">= 0")}

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = validate.size("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = validate.number("CosineAnnealingLR", "eta_min", eta_min, ">= 0")
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        frac = min(epoch, self.T_max) / self.T_max
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * frac)) / 2


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch): one function, or a list of one per param group.

    The functions are not part of `state_dict()`; pass the same ones when restoring.
    """

    _not_saved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda):
        _check_optimizer("LambdaLR", optimizer)
        n = len(optimizer.param_groups)
        fns = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(fns) != n or not all(callable(f) for f in fns):
            raise ValueError(f"LambdaLR: lr_lambda must be a function of the epoch or a list of "
                             f"one per param group ({n}), got {lr_lambda!r}")
        self.lr_lambdas = fns
        super().__init__(optimizer)

    def _lrs(self, epoch):
        return [base * validate.number("LambdaLR", f"lr_lambda[{i}]({epoch})", f(epoch), ">= 0")
                for i, (f, base) in enumerate(zip(self.lr_lambdas, self.base_lrs))]


class LinearLR(LRScheduler):
    """Linear warm-up (or decay) of the factor over total_iters epochs, then held:

        lr = base_lr * (start_factor + (end_factor - start_factor) * min(epoch, total_iters)
                        / total_iters)
    """

    _checks = {**LRScheduler._checks, "start_factor": _real("in (0, 1]"),
               "end_factor": _real("in [0, 1]"), "total_iters": _int(1)}

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        self.start_factor = validate.number("LinearLR", "start_factor", start_factor, "in (0, 1]")
        self.end_factor = validate.number("LinearLR", "end_factor", end_factor, "in [0, 1]")
        self.total_iters = validate.size("LinearLR", "total_iters", total_iters)
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        done = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * done)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), stepped once per batch, total_steps times at most.

    The lr anneals from initial_lr = max_lr / div_factor up to max_lr over the first
    pct_start * total_steps steps, then down to min_lr = initial_lr / final_div_factor
    (three_phase: up, back down to initial_lr over as many steps, then to min_lr). With
    cycle_momentum the momentum (SGD, RMSprop) or beta1 (Adam, AdamW) moves the opposite way,
    between max_momentum and base_momentum. Each phase i ends at step

        two phases: pct_start * total_steps - 1, total_steps - 1
        three:      pct_start * total_steps - 1, 2 * pct_start * total_steps - 2, total_steps - 1

    and within a phase running from a to b, fraction pct done (anneal_strategy):
    cos: b + (a - b) * (1 + cos(pi * pct)) / 2;  linear: a + (b - a) * pct.
    """

    _checks = {**LRScheduler._checks, "total_steps": _int(1), "pct_start": _real("in [0, 1]"),
               "anneal_strategy": _one_of("cos", "linear"), "three_phase": _bool,
               "cycle_momentum": _bool, "use_beta1": _bool, "max_lrs": _per_group("> 0"),
               "min_lrs": _per_group(">= 0"), "max_momentums": _per_group("in [0, 1)"),
               "base_momentums": _per_group("in [0, 1)"), "div_factor": _real("> 0"),
               "final_div_factor": _real("> 0")}

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False):
        name = "OneCycleLR"
        _check_optimizer(name, optimizer)
        n = len(optimizer.param_groups)
        if total_steps is None and (epochs is None or steps_per_epoch is None):
            raise ValueError(f"{name}: give total_steps, or epochs and steps_per_epoch; got "
                             f"total_steps=None, epochs={epochs!r}, "
                             f"steps_per_epoch={steps_per_epoch!r}")
        if total_steps is None:
            total_steps = (validate.size(name, "epochs", epochs)
                           * validate.size(name, "steps_per_epoch", steps_per_epoch))
        self.total_steps = validate.size(name, "total_steps", total_steps)
        self.pct_start = validate.number(name, "pct_start", pct_start, "in [0, 1]")
        self.anneal_strategy = validate.choice(name, "anneal_strategy", anneal_strategy,
                                               ("cos", "linear"))
        self.three_phase = validate.choice(name, "three_phase", three_phase, (False, True))
        self.cycle_momentum = validate.choice(name, "cycle_momentum", cycle_momentum,
                                              (False, True))
        self.max_lrs = _per_group_arg(name, "max_lr", max_lr, n, "> 0")
        self.max_momentums = _per_group_arg(name, "max_momentum", max_momentum, n, "in [0, 1)")
        self.base_momentums = _per_group_arg(name, "base_momentum", base_momentum, n,
                                             "in [0, 1)")
        self.div_factor = validate.number(name, "div_factor", div_factor, "> 0")
        self.final_div_factor = validate.number(name, "final_div_factor", final_div_factor,
                                                "> 0")
        defaults = getattr(optimizer, "defaults", {})
        if self.cycle_momentum and "momentum" not in defaults and "betas" not in defaults:
            raise ValueError(f"{name}: cycle_momentum=True needs an optimizer with a momentum "
                             f"or betas (SGD, RMSprop, Adam, AdamW), got "
                             f"{type(optimizer).__name__}; pass cycle_momentum=False")
        self.use_beta1 = "betas" in defaults
        self.min_lrs = [m / self.div_factor / self.final_div_factor for m in self.max_lrs]
        for group, max_lr in zip(optimizer.param_groups, self.max_lrs):
            group["initial_lr"] = max_lr / self.div_factor      # PyTorch overwrites it too
        super().__init__(optimizer)

    def _position(self, step):
        """(phase index, fraction of that phase done) at `step`."""
        T, p = self.total_steps, self.pct_start
        ends = [p * T - 1, 2 * p * T - 2, T - 1] if self.three_phase else [p * T - 1, T - 1]
        start = 0.0
        for i, end in enumerate(ends):
            if step <= end or i == len(ends) - 1:
                # NOTE: a phase of length 0 (pct_start * total_steps == 1, say) counts as
                # done; PyTorch divides by zero there.
                return i, ((step - start) / (end - start) if end != start else 1.0)
            start = end

    def _anneal(self, a, b, pct):
        if self.anneal_strategy == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (b - a) * pct + a

    def _set(self, epoch):
        if epoch > self.total_steps:
            raise ValueError(f"OneCycleLR: step {epoch} is past total_steps={self.total_steps}")
        i, pct = self._position(epoch)
        lrs, momenta = [], []
        for lo, hi, end, m_hi, m_lo in zip(self.base_lrs, self.max_lrs, self.min_lrs,
                                           self.max_momentums, self.base_momentums):
            lr_points = [lo, hi, lo, end] if self.three_phase else [lo, hi, end]
            m_points = [m_hi, m_lo, m_hi, m_hi] if self.three_phase else [m_hi, m_lo, m_hi]
            lrs.append(self._anneal(lr_points[i], lr_points[i + 1], pct))
            momenta.append(self._anneal(m_points[i], m_points[i + 1], pct))
        for group, lr, m in zip(self.optimizer.param_groups, lrs, momenta):
            group["lr"] = lr
            if self.cycle_momentum and self.use_beta1:
                group["betas"] = (m, *group["betas"][1:])
            elif self.cycle_momentum:
                group["momentum"] = m


class ReduceLROnPlateau(LRScheduler):
    """Multiply every lr by `factor` when the metric given to `step(metric)` has not improved
    for more than `patience` steps; then wait `cooldown` steps before counting again.

    Improvement (mode 'min'; 'max' mirrors it): metric < best * (1 - threshold) with
    threshold_mode 'rel', metric < best - threshold with 'abs'. A reduction never goes below
    min_lr, and is skipped when it would change the lr by eps or less. NaN never improves.
    """

    _checks = {"last_epoch": _int(0), "mode": _one_of("min", "max"),
               "factor": _real("in [0, 1)"), "patience": _int(0), "threshold": _real(">= 0"),
               "threshold_mode": _one_of("rel", "abs"), "cooldown": _int(0),
               "min_lrs": _per_group(">= 0", "min_lr"), "eps": _real(">= 0"),
               "default_min_lr": lambda what, v, s: None if v is None else _real(">= 0")(
                   what, v, s),
               "best": lambda what, v, s: _extended_real(what, v),
               "num_bad_epochs": _int(0), "cooldown_counter": _int(0)}

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        name = "ReduceLROnPlateau"
        _check_optimizer(name, optimizer)
        self.optimizer = optimizer
        self.mode = validate.choice(name, "mode", mode, ("min", "max"))
        self.factor = validate.number(name, "factor", factor, "in [0, 1)")
        self.patience = validate.size(name, "patience", patience, 0)
        self.threshold = validate.number(name, "threshold", threshold, ">= 0")
        self.threshold_mode = validate.choice(name, "threshold_mode", threshold_mode,
                                              ("rel", "abs"))
        self.cooldown = validate.size(name, "cooldown", cooldown, 0)
        n = len(optimizer.param_groups)
        self.min_lrs = _per_group_arg(name, "min_lr", min_lr, n, ">= 0")
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr
        self.eps = validate.number(name, "eps", eps, ">= 0")
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def step(self, metrics):
        """Record one epoch's metric (a number or a one-element Tensor) and maybe reduce."""
        current = _metric(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce()
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def _is_better(self, a):
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return a < (self.best * (1 - self.threshold) if rel else self.best - self.threshold)
        return a > (self.best * (1 + self.threshold) if rel else self.best + self.threshold)

    def _reduce(self):
        groups = self.optimizer.param_groups
        if len(self.min_lrs) != len(groups):
            if self.default_min_lr is None:
                raise ValueError(f"ReduceLROnPlateau: the optimizer now has {len(groups)} "
                                 f"param groups, min_lr lists {len(self.min_lrs)}; set min_lrs")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, min_lr)
            if old - new > self.eps:
                group["lr"] = new


class SequentialLR(LRScheduler):
    """Run `schedulers` one after another: schedulers[i] takes over at epoch milestones[i-1]
    and counts its own epochs from 0 there (a warm-up, then a decay that starts at base_lr)."""

    _checks = {"last_epoch": _int(0), "milestones": _check_milestones,
               "schedulers": lambda what, v, s: s._checked_parts(what, v)}
    _not_saved = ("optimizer", "schedulers")

    def __init__(self, optimizer, schedulers, milestones):
        name = "SequentialLR"
        _check_optimizer(name, optimizer)
        if not isinstance(schedulers, (list, tuple)) or not schedulers:
            raise ValueError(f"{name}: schedulers must be a non-empty list of schedulers, got "
                             f"{schedulers!r}")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or isinstance(s, ReduceLROnPlateau):
                raise ValueError(f"{name}: schedulers[{i}] must be a scheduler other than "
                                 f"ReduceLROnPlateau (which steps on a metric), got "
                                 f"{type(s).__name__}")
            if s.optimizer is not optimizer:
                raise ValueError(f"{name}: schedulers[{i}] ({type(s).__name__}) drives "
                                 "another optimizer")
        self.milestones = _milestones(name, "milestones", milestones)
        if len(self.milestones) != len(schedulers) - 1:
            raise ValueError(f"{name}: milestones must list {len(schedulers) - 1} epochs (one "
                             f"fewer than the schedulers), got {list(milestones)}")
        self.optimizer, self.schedulers, self.last_epoch = optimizer, list(schedulers), 0
        self._set(0)

    def _set(self, epoch):
        i = bisect_right(self.milestones, epoch)
        local = epoch - (self.milestones[i - 1] if i else 0)
        self.schedulers[i]._set(local)
        self.schedulers[i].last_epoch = local

    def state_dict(self):
        """Its own epoch count and milestones, and each part's state_dict under 'schedulers'."""
        return {**super().state_dict(), "schedulers": [s.state_dict() for s in self.schedulers]}

    def _checked_parts(self, what, states):
        if not isinstance(states, (list, tuple)) or len(states) != len(self.schedulers):
            raise ValueError(f"{what} must list {len(self.schedulers)} state_dicts, got "
                             f"{states!r}")
        return [s._checked(state) for s, state in zip(self.schedulers, states)]

    def _assign(self, checked):
        parts = checked.pop("schedulers", [{}] * len(self.schedulers))
        for s, part in zip(self.schedulers, parts):
            s._assign(part)
        self.__dict__.update(checked)


# ---- argument helpers ----------------------------------------------------------------------------
def _check_optimizer(owner, optimizer):
    if not hasattr(optimizer, "param_groups"):
        raise ValueError(f"{owner}: a scheduler needs an optimizer with param_groups, got "
                         f"{type(optimizer).__name__}")


def _milestones(owner, name, value):
    """Epoch numbers, each an integer >= 1, strictly increasing, as a list."""
    if not isinstance(value, (list, tuple, range)):
        raise ValueError(f"{owner + ': ' if owner else ''}{name} must be a list of epochs, got "
                         f"{value!r}")
    epochs = [validate.size(owner, f"{name}[{i}]", m) for i, m in enumerate(value)]
    if any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise ValueError(f"{owner + ': ' if owner else ''}{name} must be increasing, got "
                         f"{list(value)}")
    return epochs


def _per_group_arg(owner, name, value, n, within):
    """A number for every param group, or a list of one per group."""
    if isinstance(value, (list, tuple)):
        return list(validate.numbers(owner, name, value, n, within))
    return [validate.number(owner, name, value, within)] * n


def _extended_real(what, value):
    """A real number, infinities allowed (ReduceLROnPlateau's best starts at inf), NaN not."""
    if isinstance(value, (float, np.floating)) and math.isinf(value):
        return value
    return validate.number("", what, value)


def _metric(value):
    """ReduceLROnPlateau's metric as a float: a number or a one-element Tensor/array."""
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    # NOTE: nan and inf are accepted (a diverged epoch counts as no improvement, as in
    # PyTorch); strings, None and arrays are refused.
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return float(value)
    return float(validate.number("ReduceLROnPlateau.step", "metrics", value))
