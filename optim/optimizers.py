"""Optimizer classes over Tensors (and `nn.Parameter`s): SGD, Adam, RMSprop, Adagrad.

Each class is a thin holder of per-parameter state; the arithmetic of every step is the matching
function in `rules.py` (one implementation per algorithm). `step()` reads each parameter's
`.grad`, calls the rule with the group's hyperparameters plus that parameter's state, and writes
the result into `param.data` in place (views of the data stay valid; the dtype is kept).

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss.backward(); opt.step(); opt.zero_grad()

`params` is an iterable of Tensors, or a list of param groups: dicts with a 'params' list and
any hyperparameters that override the optimizer's defaults for that group, e.g.
`[{'params': body}, {'params': head, 'lr': 1e-3}]`.
"""

from __future__ import annotations

import copy

import numpy as np

from autotensor import Tensor, validate
from autotensor.validate import is_int

from . import rules
from .checkpoint import NONNEGATIVE_STATE

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "Adagrad"]


class Optimizer:
    """Base class: param groups, per-parameter state, zero_grad and state_dict.

    A subclass sets `defaults` in its constructor and implements `_rule(group)` (the rule
    function for a group) and `_config(group)` (the rule's hyperparameters from a group).
    `state_keys` names the rule's config entries that are per-parameter state.
    """

    state_keys = ()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}            # Tensor -> {state key: value}; Tensors hash by identity
        params = list(params) if not isinstance(params, Tensor) else [params]
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a dict {'params': [...], hyperparameter: value, ...} to `param_groups`."""
        if not isinstance(group, dict) or "params" not in group:
            raise ValueError(f"a param group must be a dict with a 'params' key, got {group!r}")
        unknown = sorted(set(group) - set(self.defaults) - {"params"})
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {unknown} in param group; "
                             f"{type(self).__name__} accepts {sorted(self.defaults)}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise ValueError(f"parameter {i} of the group is a {type(p).__name__}, "
                                 "not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"parameter {i} of the group is not a leaf tensor (it was "
                                 "produced by an op); optimizers update leaves only")
            if id(p) in seen:
                raise ValueError(f"parameter {i} of the group appears twice in the optimizer")
            seen.add(id(p))
        new = {**self.defaults, **group, "params": params}
        self._check(new)
        self.param_groups.append(new)

    def _check(self, group):
        """Refuse a group's bad hyperparameter, naming the optimizer, the key and the value."""
        name = type(self).__name__
        validate.learning_rate(name, "lr", group["lr"])
        validate.number(name, "weight_decay", group.get("weight_decay", 0.0), ">= 0")

    # ---- the update ----------------------------------------------------------------------------
    def step(self):
        """Update every parameter that has a gradient (parameters with grad None are skipped)."""
        for group in self.param_groups:
            rule, wd = self._rule(group), group.get("weight_decay", 0.0)
            for p in group["params"]:
                if p.grad is None:
                    continue
                dw = p.grad if not wd else p.grad + wd * p.data    # coupled L2 (as PyTorch)
                config = {**self._config(group), **self.state.get(p, {})}
                next_w, config = rule(p.data, dw, config)
                p.data[...] = next_w
                self.state[p] = {k: config[k] for k in self.state_keys if k in config}

    def zero_grad(self):
        """Forget every parameter's gradient (set `.grad` to None)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    # ---- saving and restoring ------------------------------------------------------------------
    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self):
        """{'state': {index: {key: value}}, 'param_groups': [{hyperparameters, 'params': [index]}]}.

        Parameters are numbered in group order; arrays are copies.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items()}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by `state_dict()`.

        Everything is checked before anything is assigned: the group and parameter counts and
        numbering, each hyperparameter's name, type (finite numbers, bools, pairs) and range,
        the state keys, and every state value (a real array shaped like its parameter,
        non-negative for squared-gradient averages, or a step count >= 0). A mismatch raises a
        ValueError naming the entry and changes nothing.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(f"an optimizer state_dict is a dict with keys 'state' and "
                             f"'param_groups', got {keys}")
        groups, state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or not isinstance(state, dict):
            raise ValueError(f"state_dict['param_groups'] must be a list and ['state'] a dict, "
                             f"got {type(groups).__name__} and {type(state).__name__}")
        params = self._params()
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(groups)} param groups, the optimizer has "
                             f"{len(self.param_groups)}")
        new_groups, first = [], 0
        for i, (saved, mine) in enumerate(zip(groups, self.param_groups)):
            # Same hyperparameter names: an Adam state_dict must not load into SGD.
            if not isinstance(saved, dict) or set(saved) != set(mine):
                keys = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
                raise ValueError(f"param group {i}: state_dict has keys {keys}, a {name} "
                                 f"group has {sorted(mine)} (saved by another optimizer?)")
            count = len(mine["params"])
            if not isinstance(saved["params"], (list, tuple)) or len(saved["params"]) != count:
                got = (len(saved["params"]) if isinstance(saved["params"], (list, tuple))
                       else saved["params"])
                raise ValueError(f"param group {i}: state_dict has {got} parameters, the "
                                 f"optimizer has {count}")
            if list(saved["params"]) != list(range(first, first + count)):
                raise ValueError(f"param group {i}: state_dict numbers its parameters "
                                 f"{saved['params']}, expected {list(range(first, first + count))}"
                                 " (state_dict numbers them in group order)")
            first += count
            group = {k: _hyperparameter(f"param group {i}: {k!r}", v, self.defaults[k])
                     for k, v in saved.items() if k != "params"}
            try:
                self._check({**mine, **group})
            except (ValueError, TypeError) as e:
                raise ValueError(f"param group {i}: {e}") from e
            new_groups.append(group)
        new_state = {}
        for i, s in state.items():
            if not is_int(i) or not 0 <= i < len(params):
                raise ValueError(f"state_dict has state for parameter {i!r}, the optimizer has "
                                 f"{len(params)} parameters (numbered 0 to {len(params) - 1})")
            if not isinstance(s, dict):
                raise ValueError(f"state of parameter {i} is a {type(s).__name__}, not a dict")
            unknown = sorted(set(s) - set(self.state_keys))
            if unknown:
                raise ValueError(f"state of parameter {i} has keys {unknown}; {name} keeps "
                                 f"only {list(self.state_keys)}")
            if s and set(s) != set(self.state_keys):
                raise ValueError(f"state of parameter {i} has keys {sorted(s)}; {name} keeps "
                                 f"all of {list(self.state_keys)} or none")
            p = params[i]
            new_state[p] = {k: _state_value(f"state {k!r} of parameter {i}", k, v, p)
                            for k, v in s.items()}
        # Everything checked: now assign.
        for group, mine in zip(new_groups, self.param_groups):
            mine.update(group)
        self.state = new_state

    def __repr__(self):
        groups = ", ".join("{" + ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
                           + f", {len(g['params'])} params}}" for g in self.param_groups)
        return f"{type(self).__name__}([{groups}])"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay.

    momentum 0: `rules.sgd`; momentum > 0: `rules.sgd_momentum` (v = momentum*v - lr*dw;
    w += v); nesterov=True: `rules.sgd_nesterov_momentum`. weight_decay adds weight_decay * w
    to the gradient. With a constant lr this equals PyTorch's SGD; see docs/training.md.
    """

    state_keys = ("velocity",)

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      weight_decay=weight_decay))

    def _check(self, group):
        super()._check(group)
        validate.number("SGD", "momentum", group["momentum"], "in [0, 1)")
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("SGD: nesterov=True needs a momentum > 0")

    def _rule(self, group):
        if group["momentum"] == 0:
            return rules.sgd
        return rules.sgd_nesterov_momentum if group["nesterov"] else rules.sgd_momentum

    def _config(self, group):
        return {"learning_rate": group["lr"], "momentum": group["momentum"]}


class Adam(Optimizer):
    """Adam (`rules.adam`): bias-corrected moment estimates m, v and step count t per parameter."""

    state_keys = ("m", "v", "t")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        betas = tuple(betas) if isinstance(betas, (tuple, list, np.ndarray)) else betas
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check(self, group):
        super()._check(group)
        validate.numbers("Adam", "betas", group["betas"], 2, "in [0, 1)")
        validate.number("Adam", "eps", group["eps"], "> 0")

    def _rule(self, group):
        return rules.adam

    def _config(self, group):
        b1, b2 = group["betas"]
        return {"learning_rate": group["lr"], "beta1": b1, "beta2": b2, "epsilon": group["eps"]}


class RMSprop(Optimizer):
    """RMSProp (`rules.rmsprop`): a running mean of squared gradients, eps outside the sqrt."""

    state_keys = ("cache",)

    def __init__(self, params, lr=1e-2, decay_rate=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, decay_rate=decay_rate, eps=eps,
                                      weight_decay=weight_decay))

    def _check(self, group):
        super()._check(group)
        validate.number("RMSprop", "decay_rate", group["decay_rate"], "in [0, 1)")
        validate.number("RMSprop", "eps", group["eps"], "> 0")

    def _rule(self, group):
        return rules.rmsprop

    def _config(self, group):
        return {"learning_rate": group["lr"], "decay_rate": group["decay_rate"],
                "epsilon": group["eps"]}


class Adagrad(Optimizer):
    """Adagrad (`rules.adagrad`): a running sum of squared gradients per parameter."""

    state_keys = ("cache",)

    def __init__(self, params, lr=1e-2, eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    def _check(self, group):
        super()._check(group)
        validate.number("Adagrad", "eps", group["eps"], "> 0")

    def _rule(self, group):
        return rules.adagrad

    def _config(self, group):
        return {"learning_rate": group["lr"], "epsilon": group["eps"]}


# ---- checks of a loaded state_dict ---------------------------------------------------------------
def _hyperparameter(what, value, default):
    """A saved hyperparameter, checked against the type of the optimizer's default."""
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{what} must be True or False, got {value!r}")
        return bool(value)
    if isinstance(default, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(default):
            raise ValueError(f"{what} must be {len(default)} finite numbers, got {value!r}")
        return tuple(validate.number("", f"{what}[{j}]", v) for j, v in enumerate(value))
    if isinstance(default, (int, float, np.integer, np.floating)):
        return validate.number("", what, value)
    return copy.deepcopy(value)


def _state_value(what, key, value, p):
    """A saved state entry as the optimizer keeps it: an array (a copy in `p`'s dtype) or a
    step count."""
    if is_int(value):
        return validate.size("", f"{what} (a step count)", value, 0)
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{what} must be an array or a step count, got "
                         f"{type(value).__name__} {value!r}")
    if value.shape != p.shape:
        raise ValueError(f"{what} has shape {value.shape}, the parameter has shape {p.shape}")
    if value.dtype.kind not in "biuf" or not np.can_cast(value.dtype, p.dtype, "same_kind"):
        raise ValueError(f"{what} has dtype {value.dtype}, which does not cast to the "
                         f"parameter's {p.dtype}")
    # NOTE: NaN and inf are kept (a diverged run reloads as it was saved); a negative average
    # of squares cannot come from the rules and would make sqrt NaN.
    if key in NONNEGATIVE_STATE and np.any(value < 0):
        raise ValueError(f"{what} holds negative values (it averages squared gradients)")
    return value.astype(p.dtype, copy=True)
