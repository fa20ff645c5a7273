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

from . import rules

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
        """Restore hyperparameters and state saved by `state_dict()` (validated before use)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(f"an optimizer state_dict is a dict with keys 'state' and "
                             f"'param_groups', got {keys}")
        groups, state = state_dict["param_groups"], state_dict["state"]
        params = self._params()
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(groups)} param groups, the optimizer has "
                             f"{len(self.param_groups)}")
        for i, (saved, mine) in enumerate(zip(groups, self.param_groups)):
            # Same hyperparameter names: an Adam state_dict must not load into SGD.
            if set(saved) != set(mine):
                raise ValueError(f"param group {i}: state_dict has keys {sorted(saved)}, a "
                                 f"{name} group has {sorted(mine)} (saved by another "
                                 f"optimizer?)")
            if len(saved["params"]) != len(mine["params"]):
                raise ValueError(f"param group {i}: state_dict has {len(saved['params'])} "
                                 f"parameters, the optimizer has {len(mine['params'])}")
            self._check({**mine, **saved})
        for i, s in state.items():
            if not 0 <= int(i) < len(params):
                raise ValueError(f"state_dict has state for parameter {i}, the optimizer has "
                                 f"{len(params)} parameters")
            unknown = sorted(set(s) - set(self.state_keys))
            if unknown:
                raise ValueError(f"state of parameter {i} has keys {unknown}; {name} keeps "
                                 f"only {list(self.state_keys)}")
            for key, value in s.items():
                if isinstance(value, np.ndarray) and value.shape != params[int(i)].shape:
                    raise ValueError(f"state {key!r} of parameter {i} has shape {value.shape}, "
                                     f"the parameter has shape {params[int(i)].shape}")
        # Everything checked: now assign (copies, cast to each parameter's dtype).
        for saved, mine in zip(groups, self.param_groups):
            mine.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = {}
        for i, s in state.items():
            p = params[int(i)]
            self.state[p] = {k: (v.astype(p.dtype, copy=True) if isinstance(v, np.ndarray)
                                 else copy.deepcopy(v)) for k, v in s.items()}

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
